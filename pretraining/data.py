"""Training data: stores opened per dataset, split, mapped to heads, and the heads' constants fitted on them.

The trainer itself only sees :class:`DatasetSplits` (map-style datasets of ``AtomicGraph`` per split), so data may
come from stores (``open_datasets``) or from anything else that yields graphs (tests build them in memory).
"""

from __future__ import annotations

import collections

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from gfm_ase.config import HeadConfig
from gfm_ase.graph.batch import AtomicGraph

if TYPE_CHECKING:
    from gfm_ase.data import Store
    from gfm_ase.pretraining.config import LabelFilterSpec, PretrainConfig

SPLITS = ("train", "val", "test")


class Graphs(Protocol):
    """A map-style collection of graphs: a list, a GraphDataset, :class:`CachedGraphs`, :class:`OffsetEnergies`, a
    fine-tuning subset."""

    def __len__(self) -> int: ...

    def __getitem__(self, k: int, /) -> AtomicGraph: ...


@dataclass
class DatasetSplits:
    """One dataset: its head, its split datasets and what the model metadata records about it."""

    name: str
    head: str
    train: Graphs
    val: Graphs
    test: Graphs
    loss_weight: float = 1.0
    elements: list[str] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    store: Store | None = None  # when read from one
    split_indices: dict[str, np.ndarray] | None = None  # store indices of each split
    energy_offsets: dict[str, float] | None = None  # eV/atom per element subtracted from the stored energies
    fidelity: str | None = None  # the model fidelity it trains at (None: its head's; gfm_ase.model.fidelity)

    def split(self, name: str) -> Graphs:
        return getattr(self, name)


class CachedGraphs:
    """Memoising wrapper of a map-style dataset (graphs are built once per process)."""

    def __init__(self, base: Graphs) -> None:
        self.base = base
        self._cache: dict[int, AtomicGraph] = {}

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, k: int) -> AtomicGraph:
        g = self._cache.get(k)
        if g is None:
            g = self._cache[k] = self.base[k]
        return g


class OffsetEnergies:
    """Map-style dataset whose graphs' energies have ``sum_i offsets[Z_i]`` subtracted (DatasetSpec.energy_offsets)."""

    def __init__(self, base: Graphs, offsets: dict[str, float]) -> None:
        from ase.data import atomic_numbers

        self.base = base
        self._table = np.full(119, np.nan)
        for sym, v in offsets.items():
            self._table[atomic_numbers[sym]] = float(v)

    def __len__(self) -> int:
        return len(self.base)

    def shift(self, numbers: np.ndarray) -> float:
        vals = self._table[np.asarray(numbers, dtype=np.int64)]
        if np.isnan(vals).any():
            from ase.data import chemical_symbols

            missing = sorted({chemical_symbols[int(z)] for z in np.asarray(numbers)[np.isnan(vals)]})
            raise ValueError(f"energy_offsets has no entry for elements {missing}")
        return float(vals.sum())

    def __getitem__(self, k: int) -> AtomicGraph:
        from dataclasses import replace

        g = self.base[k]
        if g.energy is None:
            return g
        return replace(g, energy=g.energy - self.shift(g.numbers))


def open_datasets(cfg: PretrainConfig, cutoff: float, max_neighbors: int | None = None) -> list[DatasetSplits]:
    """Open every configured store, apply ``max_structures`` and the split, and wrap the splits as graphs."""
    from gfm_ase.data import GraphDataset, Store, split_indices

    out: list[DatasetSplits] = []
    covered_sets = _covered_element_sets(cfg)
    for ds in cfg.datasets:
        path = cfg.dataset_path(ds)
        if not path.exists():
            raise FileNotFoundError(
                f"dataset {ds.name!r}: store {path} does not exist"
                + (" (run `python -m gfm_ase.pretraining.corpus.make_tiny` first?)" if "tiny" in str(path) else "")
            )
        store = Store(path)
        n_total = len(store)
        if n_total == 0:
            raise ValueError(f"dataset {ds.name!r}: store {path} is empty")
        if ds.split.by == "group":
            splits = split_indices(store, ds.split.fractions, ds.split.seed, by="group")
        else:
            splits = split_indices(n_total, ds.split.fractions, ds.split.seed, by="structure")
        if ds.max_structures is not None and ds.max_structures < n_total:
            keep = np.sort(np.random.default_rng([ds.split.seed, 7]).permutation(n_total)[: ds.max_structures])
            splits = {k: np.intersect1d(v, keep) for k, v in splits.items()}
        n_excluded = 0
        if ds.exclude_covered_by:
            counts: collections.Counter[frozenset[int]] = sum(
                (covered_sets[x] for x in ds.exclude_covered_by), collections.Counter()
            )
            cover = {es for es, n in counts.items() if n >= ds.exclude_min_structures}
            drop = np.array([k for k, es in enumerate(_element_sets(store)) if es in cover], dtype=np.int64)
            n_excluded = len(drop)
            splits = {k: np.setdiff1d(v, drop) for k, v in splits.items()}
        n_filtered = None
        if ds.label_filter is not None:
            bad = label_outliers(store, ds.label_filter)
            n_filtered = {k: int(v.sum()) for k, v in bad.items()}
            drop = np.flatnonzero(np.logical_or.reduce(list(bad.values())))
            splits = {k: np.setdiff1d(v, drop) for k, v in splits.items()}
        if len(splits["train"]) == 0:
            raise ValueError(f"dataset {ds.name!r}: the training split is empty ({n_total} structures)")
        offsets = ds.energy_offsets
        if offsets is not None:
            missing = sorted(set(store.elements) - set(offsets))
            if missing:
                raise ValueError(f"dataset {ds.name!r}: energy_offsets lacks elements {missing} of {path.name}")
        graphs: dict[str, Graphs] = {}
        for k, idx in splits.items():
            gd: Graphs = GraphDataset(
                store,
                cutoff,
                indices=idx,
                head=0,
                max_neighbors=max_neighbors,
            )
            if offsets is not None:
                gd = OffsetEnergies(gd, offsets)
            graphs[k] = CachedGraphs(gd) if cfg.data.cache_graphs else gd
        attrs = {k: v for k, v in store.attrs.items() if isinstance(v, (str, int, float, bool))}
        prov = {
            "name": ds.name,
            "path": str(path),
            "store": attrs,
            "n_structures": n_total,
            "n_train": int(len(splits["train"])),
            "n_val": int(len(splits["val"])),
            "n_test": int(len(splits["test"])),
            "split": ds.split.model_dump(mode="json"),
            "label_counts": store.label_counts(),
        }
        if ds.exclude_covered_by:
            excluded: dict[str, Any] = {"datasets": list(ds.exclude_covered_by), "n_structures": int(n_excluded)}
            if ds.exclude_min_structures > 1:
                excluded["min_structures"] = ds.exclude_min_structures
            prov["excluded_covered_by"] = excluded
        if ds.label_filter is not None and n_filtered is not None:  # set together
            prov["label_filter"] = {**ds.label_filter.model_dump(mode="json"), "n_structures_beyond": n_filtered}
        if offsets is not None:
            prov["energy_offsets_eV_per_atom"] = {k: float(v) for k, v in sorted(offsets.items())}
        if cfg.model.fidelities:  # the fidelity its structures train at (its own, else its head's)
            prov["fidelity"] = ds.fidelity or cfg.head_of(ds.head).fidelity
        out.append(
            DatasetSplits(
                name=ds.name,
                head=ds.head,
                train=graphs["train"],
                val=graphs["val"],
                test=graphs["test"],
                loss_weight=ds.loss_weight,
                elements=list(store.elements),
                provenance=prov,
                store=store,
                split_indices=splits,
                energy_offsets=offsets,
                fidelity=ds.fidelity,
            )
        )
    return out


def label_outliers(store: Store, spec: LabelFilterSpec) -> dict[str, np.ndarray]:
    """Boolean masks [S] of the structures beyond each bound of a ``LabelFilterSpec`` (missing labels pass)."""
    out: dict[str, np.ndarray] = {}
    if spec.max_abs_stress is not None:
        with np.errstate(invalid="ignore"):
            out["max_abs_stress"] = np.nan_to_num(np.abs(store.stresses), nan=0.0).max(axis=1) > spec.max_abs_stress
    if spec.max_abs_force is not None:
        norms = np.nan_to_num(np.linalg.norm(store.forces_all(), axis=1), nan=0.0)
        owner = np.repeat(np.arange(len(store)), store.n_atoms)
        worst = np.zeros(len(store))
        np.maximum.at(worst, owner, norms)
        out["max_abs_force"] = worst > spec.max_abs_force
    return out


def _element_sets(store: Store) -> list[frozenset[int]]:
    """The set of atomic numbers of every structure of ``store``."""
    zs, counts = store.composition()
    return [frozenset(int(z) for z in zs[row > 0]) for row in counts]


def _covered_element_sets(cfg: PretrainConfig) -> dict[str, collections.Counter[frozenset[int]]]:
    """{dataset name: number of its structures per element set} for every dataset some other dataset excludes by."""
    from gfm_ase.data import Store

    names = {x for ds in cfg.datasets for x in ds.exclude_covered_by}
    out: dict[str, collections.Counter[frozenset[int]]] = {}
    for ds in cfg.datasets:
        if ds.name in names:
            path = cfg.dataset_path(ds)
            if not path.exists():
                raise FileNotFoundError(f"dataset {ds.name!r}: store {path} does not exist")
            out[ds.name] = collections.Counter(_element_sets(Store(path)))
    return out


# ----------------------------------------------------------------------------------------------- head constants
class _JointStoreView:
    """The part of the Store interface ``fit_reference_energies`` uses, over several (store, indices) pairs, so that
    a head shared by several datasets gets one joint least-squares fit."""

    def __init__(
        self,
        parts: Sequence[tuple[Store | _GraphStoreView, np.ndarray]],
        offsets: Sequence[dict[str, float] | None] | None = None,
    ) -> None:
        self.parts = [(s, np.asarray(i, dtype=np.int64)) for s, i in parts]
        self.offsets = list(offsets) if offsets is not None else [None] * len(self.parts)
        self._zs = np.unique(np.concatenate([s.composition(i)[0] for s, i in self.parts]))

    def __len__(self) -> int:
        return sum(len(i) for _, i in self.parts)

    @property
    def energies(self) -> np.ndarray:
        out = []
        for (s, i), off in zip(self.parts, self.offsets):
            e = np.asarray(s.energies, dtype=np.float64)[i]
            if off:
                zs, counts = s.composition(i)
                vec = np.array([off.get(_symbol(z), np.nan) for z in zs])
                e = e - counts @ vec
            out.append(e)
        return np.concatenate(out)

    def composition(
        self, indices: Sequence[int] | np.ndarray | None = None, elements: Sequence[int] | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        counts = np.concatenate([s.composition(i, elements=self._zs)[1] for s, i in self.parts])
        if indices is not None:
            counts = counts[np.asarray(indices, dtype=np.int64)]
        return self._zs, counts


def _symbol(z: int | np.integer) -> str:
    from ase.data import chemical_symbols

    return chemical_symbols[int(z)]


class _GraphStoreView:
    """Store-like view of in-memory graphs (energies and compositions) for datasets not read from a store."""

    def __init__(self, graphs: Graphs) -> None:
        self.graphs = graphs

    def __len__(self) -> int:
        return len(self.graphs)

    @property
    def energies(self) -> np.ndarray:
        energies = (self.graphs[k].energy for k in range(len(self.graphs)))
        return np.array([np.nan if e is None else e for e in energies], dtype=np.float64)

    def composition(
        self, indices: Sequence[int] | np.ndarray | None = None, elements: Sequence[int] | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        idx = range(len(self.graphs)) if indices is None else indices
        nums = [np.asarray(self.graphs[int(k)].numbers) for k in idx]
        zs = np.unique(np.concatenate(nums)) if elements is None else np.asarray(elements, dtype=np.int64)
        counts = np.zeros((len(nums), len(zs)), dtype=np.int64)
        for r, n in enumerate(nums):
            u, c = np.unique(n, return_counts=True)
            pos = np.searchsorted(zs, u)
            ok = (pos < len(zs)) & (zs[np.minimum(pos, len(zs) - 1)] == u)
            counts[r, pos[ok]] = c[ok]
        return zs, counts


def fit_head_constants(
    datasets: list[DatasetSplits],
    head: str,
    scale_mode: str = "force_rms",
    shift_mode: str = "mean",
    max_structures: int = 20000,
    seed: int = 0,
) -> dict[str, Any]:
    """Reference energies (joint least squares on the training splits of the head's datasets), shift (mean
    per-atom residual energy) and scale (RMS of the force components, or the std of the per-atom residual energy
    when there are no forces); fitted on training data only."""
    from ase.data import chemical_symbols

    from gfm_ase.data import fit_reference_energies

    mine = [d for d in datasets if d.head == head]
    parts: list[tuple[Store | _GraphStoreView, np.ndarray]] = []
    offsets: list[dict[str, float] | None] = []
    for d in mine:
        if d.store is not None:
            assert d.split_indices is not None  # open_datasets sets both
            parts.append((d.store, d.split_indices["train"]))
            offsets.append(d.energy_offsets)
        else:  # in-memory graphs already carry shifted energies
            parts.append((_GraphStoreView(d.train), np.arange(len(d.train))))
            offsets.append(None)
    joint = _JointStoreView(parts, offsets)
    energies = joint.energies
    has_e = np.isfinite(energies)
    refs: dict[str, float] = {}
    residual_pa = np.zeros(0)
    if has_e.any():
        fitted = fit_reference_energies(joint, None, return_residuals=True)
        assert isinstance(fitted, tuple)  # return_residuals: (references, residuals)
        refs, residuals = fitted
        zs, counts = joint.composition()
        n_atoms = counts.sum(axis=1)[has_e]
        residual_pa = residuals / n_atoms
    # force RMS on a seeded sample of each dataset's training split
    rng = np.random.default_rng([seed, 11])
    sq, n_comp = 0.0, 0
    for d in mine:
        n = len(d.train)
        take = np.sort(rng.permutation(n)[:max_structures]) if n > max_structures else np.arange(n)
        for k in take:
            if d.store is not None:  # labels only: no neighbour list, no graph cache
                assert d.split_indices is not None
                f = d.store.labels_and_structure(int(d.split_indices["train"][int(k)])).forces
            else:
                f = d.train[int(k)].forces
            if f is not None:
                f = np.asarray(f)
                ok = np.isfinite(f)
                sq += float((f[ok] ** 2).sum())
                n_comp += int(ok.sum())
    force_rms = float(np.sqrt(sq / n_comp)) if n_comp else None
    energy_std = float(residual_pa.std()) if residual_pa.size > 1 else None
    shift = float(residual_pa.mean()) if (shift_mode == "mean" and residual_pa.size) else 0.0
    if scale_mode == "none":
        scale = 1.0
    elif scale_mode == "force_rms" and force_rms:
        scale = force_rms
    elif energy_std:
        scale = energy_std
    else:
        scale = force_rms or 1.0
    if not np.isfinite(scale) or scale < 1e-6:
        scale = 1.0
    # elements the head was trained on: those present in its training splits (not val/test-only ones)
    zs, counts = joint.composition()
    elements = [chemical_symbols[int(z)] for z in zs[counts.sum(axis=0) > 0]]
    unseen = sorted({e for d in mine for e in d.elements} - set(elements))
    levels = sorted({str(d.provenance.get("store", {}).get("level_of_theory", "")) for d in mine} - {""})
    return {
        "reference_energies": {k: float(v) for k, v in refs.items()},
        "scale": float(scale),
        "shift": float(shift),
        "elements": elements,
        "stats": {
            "force_rms": force_rms,
            "energy_residual_std_per_atom": energy_std,
            "n_energy_labels": int(has_e.sum()),
            "n_force_components": n_comp,
        },
        "warnings": (
            [f"elements {unseen} occur only outside the training split of head {head!r}; the head does not cover them"]
            if unseen
            else []
        )
        + ([f"head {head!r} mixes datasets of different levels of theory: {levels}"] if len(levels) > 1 else []),
    }


def head_configs(
    cfg: PretrainConfig, datasets: list[DatasetSplits], constants: dict[str, dict], probs: dict[str, float]
) -> list[HeadConfig]:
    """HeadConfigs with fitted constants and provenance of their datasets."""
    out = []
    for h in cfg.heads:
        c = constants[h.name]
        prov = []
        for d in datasets:
            if d.head == h.name:
                prov.append(
                    {**d.provenance, "sampling_probability": float(probs[d.name]), "loss_weight": d.loss_weight}
                )
        out.append(
            HeadConfig(
                **h.identity(),
                elements=c["elements"],
                reference_energies=c["reference_energies"],
                scale=c["scale"],
                shift=c["shift"],
                hidden=list(h.hidden),
                datasets=prov,
                metrics={"normalisation": c["stats"]},
            )
        )
    return out
