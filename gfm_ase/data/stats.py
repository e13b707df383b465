"""Summaries and sanity checks of a store (used by ``gfm data info`` and ``gfm data check``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from gfm_ase.data.store import Store, StoreError


def store_info(store: Store) -> dict:
    """Counts, elements, label coverage and label statistics (energies per atom, force components)."""
    n_atoms = store.n_atoms
    e = store.energies
    has_e = np.isfinite(e)
    info: dict[str, Any] = {
        "path": str(store.path),
        "name": store.attrs.get("name"),
        "level_of_theory": store.attrs.get("level_of_theory"),
        "code": store.attrs.get("code"),
        "source": store.attrs.get("source"),
        "license": store.attrs.get("license"),
        "schema_version": store.attrs.get("schema_version"),
        "n_structures": len(store),
        "n_atoms": int(n_atoms.sum()),
        "atoms_per_structure": (
            {"min": int(n_atoms.min()), "max": int(n_atoms.max()), "mean": float(n_atoms.mean())}
            if len(store)
            else None
        ),
        "elements": store.elements,
        "has": store.label_counts(),
        "periodic": int(store.pbcs.all(axis=1).sum()),
        "n_groups": len(set(store.groups.tolist())),
        "groups": dict(Counter(store.groups.tolist()).most_common(50)),
    }
    if has_e.any():
        epa = e[has_e] / n_atoms[has_e]
        info["energy_per_atom"] = {
            "mean": float(epa.mean()),
            "std": float(epa.std()),
            "min": float(epa.min()),
            "max": float(epa.max()),
        }
    if info["has"]["forces"]:
        f = store.forces_all()
        f = f[np.isfinite(f).all(axis=1)]
        norms = np.linalg.norm(f, axis=1)
        info["forces"] = {
            "rms_component": float(np.sqrt(np.mean(f**2))),
            "max_norm": float(norms.max()),
            "mean_norm": float(norms.mean()),
        }
    if info["has"]["stress"]:
        s = store.stresses
        s = s[np.isfinite(s).all(axis=1)]
        info["stress"] = {"rms_component": float(np.sqrt(np.mean(s**2))), "max_abs": float(np.abs(s).max())}
    return info


def check_store(
    store: Store,
    *,
    min_distance: float = 0.5,
    max_force: float = 50.0,
    energy_z: float = 12.0,
    progress: bool = False,
    min_distance_factor: float | None = None,
) -> list[tuple[str, str]]:
    """Problems found in a store, as ``(level, message)`` with level "error" or "warning".

    A damaged file (an HDF5 chunk that cannot be read) raises StoreError.
    Errors: unreadable records, overlapping atoms (closer than ``min_distance``), geometries the calculator and
    screening would refuse (:mod:`gfm_ase.graph.sanity` with ``min_distance_factor``; None: its default, 0: off).
    Warnings (real data can have them): forces above ``max_force``, net force on a periodic cell, energy per atom
    far (robust z-score
    > ``energy_z``) from the median of structures with the same element set - the 5 worst per set are listed -
    and duplicate ids.
    """
    from gfm_ase.graph.neighbors import StructureError, radius_graph
    from gfm_ase.graph.sanity import DEFAULT_FACTOR, SanityCheck

    sanity = SanityCheck(DEFAULT_FACTOR if min_distance_factor is None else min_distance_factor)
    problems: list[tuple[str, str]] = []
    it = range(len(store))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="checking", unit=" structures")
    for i in it:
        try:
            r = store[i]
        except StoreError:  # the file itself is damaged (unreadable HDF5 chunk): one error, not one per record
            raise
        except Exception as exc:  # noqa: BLE001 - report every unreadable record
            problems.append(("error", f"structure {i}: unreadable ({exc})"))
            continue
        cell, pbc = np.asarray(r.cell), np.asarray(r.pbc)  # a record's cell and pbc are always set
        try:
            radius_graph(r.positions, cell, pbc, cutoff=min_distance, min_distance=min_distance)
        except StructureError as exc:
            problems.append(("error", f"structure {i} (id {r.id!r}): {exc}"))
        else:
            msg = sanity.problem(r.positions, r.numbers, cell, pbc)
            if msg is not None:
                problems.append(("error", f"structure {i} (id {r.id!r}): {msg}"))
        if r.forces is not None:
            fmax = float(np.linalg.norm(r.forces, axis=1).max())
            if fmax > max_force:
                problems.append(("warning", f"structure {i} (id {r.id!r}): max force {fmax:.1f} eV/A > {max_force}"))
            if pbc.all():
                net = np.abs(r.forces.sum(axis=0)).max()
                if net > 1e-2 * max(1, r.n_atoms**0.5):
                    problems.append(
                        ("warning", f"structure {i} (id {r.id!r}): net force {net:.3g} eV/A on a periodic cell")
                    )
    e = store.energies
    ok = np.flatnonzero(np.isfinite(e))
    if len(ok) > 10:
        epa = e[ok] / store.n_atoms[ok]
        zs, counts = store.composition(ok)
        keys = [tuple(zs[np.flatnonzero(c)].tolist()) for c in counts]
        for key in sorted(set(keys)):
            sel = np.array([k == key for k in keys])
            if sel.sum() < 10:
                continue
            x = epa[sel]
            med = np.median(x)
            mad = np.median(np.abs(x - med)) * 1.4826 + 1e-6
            z = np.abs(x - med) / mad
            bad = np.flatnonzero(z > energy_z)
            if len(bad):
                worst = bad[np.argsort(-z[bad])][:5]
                listed = ", ".join(f"{int(ok[np.flatnonzero(sel)[j]])} ({x[j]:.3f} eV)" for j in worst)
                problems.append(
                    (
                        "warning",
                        f"{len(bad)} structures with elements {list(key)} have an energy per "
                        f"atom > {energy_z:g} robust sigmas from the median {med:.3f} eV; "
                        f"worst: {listed}",
                    )
                )
    ids = store.ids
    dup = [k for k, v in Counter(ids.tolist()).items() if k and v > 1]
    if dup:
        problems.append(("warning", f"{len(dup)} duplicate ids, e.g. {dup[:3]}"))
    return problems
