"""``screen()``: inputs -> one results file, resumable, sharded over ranks.

Rerunning the same call after an interruption (even SIGKILL) continues where the committed parts end and finishes
with every input structure present exactly once; a finished output is recognised and left alone.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence, cast

import numpy as np

from gfm_ase.fileio import exclusive_lock
from gfm_ase.screening.columns import formula_of
from gfm_ase.screening.config import ScreenConfig, ScreenConfigError, ScreenerConfig
from gfm_ase.screening.engine import Screener
from gfm_ase.screening.hull import ENERGY_SOURCES, FormationReference, HullReference, annotate
from gfm_ase.screening.output import (
    FORMAT,
    FORMAT_VERSION,
    OutputError,
    PartWriter,
    done_ids,
    done_units,
    lock_path,
    merge_parts,
    output_format,
    parts_dir,
    read_metadata,
    read_results,
    remove_parts,
)
from gfm_ase.screening.readers import count_units, iter_units, open_sources
from gfm_ase.screening.rows import complete_units, concat, n_rows, take
from gfm_ase.screening.shards import detect_shard, mark_done, wait_for_ranks

if TYPE_CHECKING:
    from gfm_ase.model.gfm import GFMModel

MANIFEST = "manifest.json"

COLUMN_DOC = {
    "id": "input file name + ':' + index within the file",
    "n_atoms": "number of atoms",
    "formula": "Hill formula",
    "energy": "total energy, eV (with the D3 term when dispersion is on)",
    "dispersion_energy": "the D3 part of energy, eV (only with dispersion; gfm_ase.dispersion)",
    "energy_per_atom": "eV/atom",
    "uncertainty": "energy_std / n_atoms (gfm_ase.runtime.uncertainty: std of E_h - sum_i ref_h[Z_i] over the head's "
    "committee, else its family), eV/atom; only present when the head has a committee or a family "
    "of two or more heads (metadata 'uncertainty' says why it is absent)",
    "stress": "eV/A^3, ASE sign (tension positive), Voigt xx yy zz yz xz xy; NaN for non-periodic structures",
    "forces": "eV/A, per atom (flat; rows split by n_atoms)",
    "energies": "per-atom energies, eV (flat; rows split by n_atoms)",
    "formation_energy_per_atom": "e - sum_el x_el mu_el, eV/atom (see formation_reference)",
    "e_above_hull": "energy above the convex hull of the reference phases, eV/atom (negative: below it)",
    "error": "empty when evaluated; else why the structure has no result",
}


def _log_default(msg: str) -> None:
    print(f"[gfm screen] {msg}", file=sys.stderr, flush=True)


def _input_signature(paths: Sequence) -> list[str]:
    return [os.path.abspath(str(p)) for p in paths]


def load_hull_references(
    paths: Sequence, screener: Screener | None, energies: str = "model", log: Callable[[str], None] | None = None
) -> HullReference:
    """Competing phases from any screening inputs; energies from the screener's model or stored in the input."""
    from gfm_ase.screening.readers import iter_units as _iter

    if energies not in ENERGY_SOURCES:
        raise ValueError(f"hull energies must be one of {ENERGY_SOURCES}, got {energies!r}")
    items = []
    for unit in _iter(open_sources(paths)):
        items.extend(unit.load())
    if not items:
        raise ValueError("the hull reference set is empty")
    formulas = [formula_of(it.numbers) for it in items]
    if energies == "stored":
        missing = [it.id for it in items if it.energy is None]
        if missing:
            raise ValueError(f"hull references without a stored energy: {missing[:5]} (use energies='model')")
        values = [float(cast(float, it.energy)) for it in items]  # none missing (checked above)
    else:
        if screener is None:
            raise ValueError("energies='model' needs a screener")
        block = screener.evaluate(items, ids=[it.id for it in items])
        bad = [(i, e) for i, e in zip(block["id"], block["error"]) if e]
        if bad:
            raise ValueError(f"hull references that could not be evaluated: {bad[:3]}")
        values = block["energy"].tolist()
    hull = HullReference(zip(formulas, values), names=[it.id for it in items])
    if log is not None:
        log(
            f"hull references: {len(items)} phases over {'-'.join(hull.elements)}; on the hull: "
            f"{', '.join(f for _, f in hull.stable())}"
        )
    return hull


class _Progress:
    def __init__(self, log: Callable[[str], None] | None, every: float = 15.0) -> None:
        self.log = log
        self.every = every
        self.t0 = time.perf_counter()
        self.last = self.t0

    def __call__(self, n: int, atoms: int) -> None:
        now = time.perf_counter()
        if self.log is not None and now - self.last >= self.every:
            dt = now - self.t0
            self.log(f"{n} structures ({n / dt:.1f}/s, {atoms / dt:.0f} atoms/s)")
            self.last = now


def screen(
    inputs: Sequence,
    out: str | os.PathLike,
    model: str | Path | GFMModel | None = None,
    head: str | None = None,
    *,
    config: ScreenConfig | None = None,
    log: Callable[[str], None] | None = _log_default,
    screener: Screener | None = None,
    **options: Any,
) -> dict:
    """Screen ``inputs`` (files/folders) with one head of ``model`` into ``out`` (.h5 or .parquet).

    config: a :class:`~gfm_ase.screening.config.ScreenConfig` (the engine's options in ``config.screener``, the
    run's beside them); keyword ``options`` are its flat option names (``dtype=...``, ``max_atoms=...``,
    ``hull_references=...``, ``shortlist=...``, ...), validated into one config on top of ``config``. A bad or
    unknown option is one :class:`~gfm_ase.screening.config.ScreenConfigError` line before anything is loaded or
    written. ``min_distance_factor=None`` here means the check's default (a number sets it, 0 disables; see
    :mod:`gfm_ase.graph.sanity`); refused structures get an error row. screener: an engine built already (its own
    config then stands for the engine options).
    Returns a summary: ``out``, ``rows`` (in the file), ``evaluated`` (this call), ``errors``, ``complete`` (whether
    this call finished the file; False on ranks other than 0), ``seconds``, ``shortlist`` (path or None).
    """
    t0 = time.perf_counter()
    if options.get("min_distance_factor", 0) is None:  # "the default" in screen()'s keyword API
        del options["min_distance_factor"]
    if screener is not None and any(k in ScreenerConfig.model_fields for k in options):
        raise ScreenConfigError(
            f"engine options {sorted(set(options) & set(ScreenerConfig.model_fields))} given "
            "with a screener: set them on the Screener"
        )
    cfg = ScreenConfig.from_options(config, **options) if options or config is None else config
    if not isinstance(cfg, ScreenConfig):
        raise ScreenConfigError(f"config must be a ScreenConfig, got {type(cfg).__name__}")
    out = Path(out)
    fmt = output_format(out)
    sources = open_sources(inputs)
    shard = detect_shard(cfg.rank, cfg.world_size)
    if cfg.overwrite and shard.world > 1:
        raise OutputError("--overwrite is only allowed with a single process (remove the output by hand first)")
    if screener is None:
        engine = cfg.screener
        if engine.device in ("auto", "cuda") and shard.world > 1:
            import torch

            if torch.cuda.is_available():
                engine = ScreenerConfig.build(engine, device=f"cuda:{shard.local_rank % torch.cuda.device_count()}")
        screener = Screener(model, head, config=engine)
    hull_references, hull_energies, formation = cfg.hull_references, cfg.hull_energies, cfg.formation
    overwrite = cfg.overwrite
    signature = {
        "format": fmt,
        "inputs": _input_signature(inputs),
        "screener": screener.signature(),
        "hull_references": _input_signature(hull_references) if hull_references else None,
        "hull_energies": hull_energies if hull_references else None,
        "formation": bool(formation),
    }
    parts = parts_dir(out)
    # one process per rank and output: a second run on the same output would evaluate the same units again
    with exclusive_lock(lock_path(out, shard.rank), f"screening run (rank {shard.rank} of {shard.world})"):
        # --- an existing output: finished already, or a different run -------------------------------------------------
        if out.exists():
            try:
                meta = read_metadata(out)
            except Exception as exc:
                meta = {"unreadable": str(exc)}
            if meta.get("signature") == signature and not overwrite:
                if shard.rank == 0:
                    remove_parts(parts)
                if log:
                    log(f"{out} is already complete ({meta.get('n_rows')} rows); nothing to do")
                return {
                    "out": str(out),
                    "rows": meta.get("n_rows"),
                    "evaluated": 0,
                    "errors": None,
                    "complete": True,
                    "seconds": time.perf_counter() - t0,
                    "shortlist": None,
                }
            if not overwrite:
                raise OutputError(
                    f"{out} exists and was written by a different run (other inputs, model, head or "
                    "options); choose another output or pass overwrite (--overwrite)"
                )
            out.unlink()
            remove_parts(parts)
        elif overwrite:
            remove_parts(parts)

        # --- the parts folder: resume when it belongs to this run -----------------------------------------------------
        parts.mkdir(parents=True, exist_ok=True)
        manifest = parts / MANIFEST
        previous = None
        if manifest.exists():
            try:
                previous = json.loads(manifest.read_text())
            except json.JSONDecodeError:
                previous = None
            if previous is not None and previous.get("signature") != signature:
                raise OutputError(
                    f"{parts} holds partial results of a different run; rerun that command to finish it, "
                    "or pass overwrite (--overwrite) to start over"
                )
        if previous is None:
            tmp = parts / f".manifest.r{shard.rank}.tmp"
            tmp.write_text(json.dumps({"signature": signature}, indent=1, sort_keys=True))
            os.replace(tmp, manifest)
        skip = done_ids(parts)
        if skip and log:
            log(f"resuming: {len(skip)} structures already done in {parts}")

        # --- formation and hull references ----------------------------------------------------------------------------
        hull = None
        form = None
        if hull_references:
            hull = load_hull_references(hull_references, screener, hull_energies, log)
            form = hull.formation if formation else None
        elif formation and screener.head_config.reference_energies:
            form = FormationReference(
                screener.head_config.reference_energies,
                source=f"reference_energies of head {screener.head!r} (fitted per-element offsets, "
                "not elemental ground states)",
            )

        # --- evaluate this rank's shard, committing complete units in chunks ------------------------------------------
        writer = PartWriter(parts, shard.rank)
        if log:
            log(
                f"rank {shard.rank}/{shard.world} on {screener.device} ({screener.precision}); "
                f"{screener.budget.describe()}"
            )
        buffer: list[dict] = []
        buffered = 0
        last_commit = time.monotonic()
        evaluated = errors = 0

        def commit(final: bool) -> None:
            nonlocal buffer, buffered, last_commit
            block = concat(buffer)
            if not block:
                buffer, buffered = [], 0
                return
            done = complete_units(block)
            if final and not done.all():
                raise RuntimeError("internal error: units left incomplete at the end of the run")
            writer.commit(take(block, done))
            rest = take(block, ~done)
            buffer = [rest] if n_rows(rest) else []
            buffered = n_rows(rest) if buffer else 0
            last_commit = time.monotonic()

        units = shard.take(iter_units(sources))
        for block in screener.run(units, skip=skip, progress=_Progress(log)):
            annotate(block, form, hull)
            evaluated += n_rows(block)
            errors += int(np.count_nonzero(block["error"] != ""))
            buffer.append(block)
            buffered += n_rows(block)
            if buffered >= cfg.chunk_rows or time.monotonic() - last_commit >= cfg.chunk_seconds:
                commit(final=False)
        commit(final=True)
        mark_done(parts, shard)
        summary = {
            "out": str(out),
            "rows": None,
            "evaluated": evaluated,
            "errors": errors,
            "complete": False,
            "seconds": time.perf_counter() - t0,
            "shortlist": None,
            "rank": shard.rank,
            "world": shard.world,
        }
        if log:
            log(f"rank {shard.rank}: {evaluated} structures in {summary['seconds']:.1f} s ({errors} with errors)")
        if shard.rank != 0:
            return summary

        # --- rank 0: wait for the others, check completeness, merge ---------------------------------------------------
        if shard.world > 1:
            wait_for_ranks(parts, shard, timeout=cfg.wait_timeout, log=log)
        n_units = count_units(sources)
        present = done_units(parts)
        missing = sorted(set(range(n_units)) - present)
        if missing:
            raise OutputError(
                f"{len(missing)} input units have no results (first: {missing[:10]}); "
                "rerun the same command to finish them"
            )
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "signature": signature,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "head": screener.head_config.model_dump(mode="json", exclude={"datasets", "metrics"}),
            "model": screener.model_id,
            "family_heads": screener.family,
            "precision": screener.precision,
            "properties": list(screener.properties),
            "columns": {k: v for k, v in COLUMN_DOC.items()},
            "uncertainty": _uncertainty_note(screener),
            "dispersion": screener.dispersion.describe() if screener.dispersion is not None else None,
            "formation_reference": form.source if form is not None else None,
            "hull": None if hull is None else {"elements": hull.elements, "stable": hull.stable()},
            "world_size": shard.world,
        }
        counts = merge_parts(parts, out, meta)
        if counts["duplicates_dropped"] and log:
            log(f"dropped {counts['duplicates_dropped']} duplicate rows while merging")
        remove_parts(parts)
        summary.update(rows=counts["rows"], complete=True, seconds=time.perf_counter() - t0)
        if log:
            log(f"wrote {out}: {counts['rows']} rows in {summary['seconds']:.1f} s")
        if cfg.shortlist:
            summary["shortlist"] = str(write_shortlist(out, cfg.shortlist, by=cfg.shortlist_by, log=log))
        return summary


def _uncertainty_note(screener: Screener) -> str:
    if screener.spread is not None:
        return f"column 'uncertainty': spread over the {screener.spread_kind} heads {screener.family}"
    if not screener.uncertainty:
        return "no 'uncertainty' column: switched off (--no-uncertainty)"
    return (
        f"no 'uncertainty' column: head {screener.head!r} has no committee and no family of two or more "
        f"heads (family: {screener.family or [screener.head]})"
    )


def shortlist_key(block: dict, by: str | None) -> str:
    if by is not None:
        if by not in block:
            raise ValueError(f"cannot rank by {by!r}: the output has no such column")
        return by
    for k in ("e_above_hull", "formation_energy_per_atom", "energy_per_atom"):
        if k in block:
            return k
    raise ValueError("nothing to rank by")


def write_shortlist(
    out: str | os.PathLike, k: int, by: str | None = None, log: Callable[[str], None] | None = None
) -> Path:
    """The ``k`` structures with the lowest ``by`` (default: e_above_hull, else formation energy, else energy per
    atom), without errors, as CSV next to ``out`` (``<out>.shortlist.csv``)."""
    from gfm_ase.fileio import atomic_write_bytes

    out = Path(out)
    cols = [
        "id",
        "formula",
        "n_atoms",
        "energy_per_atom",
        "formation_energy_per_atom",
        "e_above_hull",
        "uncertainty",
        "error",
    ]
    block = read_results(out, columns=cols)
    key = shortlist_key(block, by)
    ok = (block["error"] == "") & np.isfinite(block[key])
    idx = np.flatnonzero(ok)
    idx = idx[np.argsort(block[key][idx], kind="stable")][:k]
    names = [c for c in cols if c in block and c != "error"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["rank", *names])
    for r, i in enumerate(idx, 1):
        w.writerow([r, *[block[c][i] if block[c].dtype == object else f"{block[c][i]:.6g}" for c in names]])
    path = out.with_name(out.name + ".shortlist.csv")
    atomic_write_bytes(path, buf.getvalue().encode())
    if log:
        log(f"shortlist by {key} ({len(idx)} structures): {path}")
        for line in buf.getvalue().splitlines()[1:11]:
            log("  " + line)
    return path


__all__ = ["screen", "load_hull_references", "write_shortlist", "COLUMN_DOC"]
