"""Screening output: crash-safe part files while running, one HDF5 or Parquet file at the end.

While a screen runs, results are committed in chunks: each chunk is a small HDF5 *part file* in ``OUT.parts/``,
written under a temporary name, fsynced and renamed, so a part is either complete or absent, whatever kills the
process. The set of ids in the parts is what is done; a rerun skips those ids. When all ranks are done, the parts
are merged (sorted by input order, de-duplicated by id) into ``OUT`` (written to a temporary file and renamed),
and the parts folder is removed.

Final layout. HDF5 (``.h5``/``.hdf5``): one dataset per column, with ``n_rows`` rows; per-atom columns
(``forces`` [sum n, 3], ``energies`` [sum n]) are flat, row ``r`` owns ``atom_ptr[r]:atom_ptr[r+1]``; root attributes
hold the run's metadata as JSON (``gfm_screening``). Parquet (``.parquet``): one row per structure, per-atom columns
as lists; the metadata JSON is in the schema metadata under ``gfm_screening``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator, Sequence

import h5py
import numpy as np

from gfm_ase.fileio import publish

from gfm_ase.screening.rows import INTERNAL_COLUMNS, PER_ATOM_COLUMNS, STRING_COLUMNS, concat, n_rows, take

FORMAT = "gfm-ase-screening"
FORMAT_VERSION = 1
OUTPUT_SUFFIXES = (".h5", ".hdf5", ".parquet")
PART_RE = re.compile(r"^part-r(\d+)-(\d+)\.h5$")
STR = h5py.string_dtype("utf-8")


class OutputError(RuntimeError):
    """An output that cannot be written or resumed (different run, unknown format, missing rows)."""


def output_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise OutputError(f"output {path} must end with one of {OUTPUT_SUFFIXES}")
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise OutputError("Parquet output needs pyarrow (pip install pyarrow); or write .h5") from exc
        return "parquet"
    return "hdf5"


def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def lock_path(out: Path, rank: int) -> Path:
    """The lock a rank holds while it screens into ``out`` (a hidden file beside it, kept afterwards: removing a
    lock file that another process may have opened would let two processes hold "the" lock)."""
    return out.with_name(f".{out.name}.rank{rank}.lock")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _write_h5_columns(f: h5py.File, block: dict) -> None:
    for k, v in block.items():
        if k in STRING_COLUMNS:
            f.create_dataset(k, data=np.asarray(v, dtype=object), dtype=STR)
        else:
            f.create_dataset(k, data=v)


def _read_h5_columns(f: h5py.File, names: Sequence[str] | None = None) -> dict:
    out = {}
    for k in names or list(f.keys()):
        if k not in f:
            continue
        if k in STRING_COLUMNS:
            out[k] = f[k].asstr()[...].astype(object)
        else:
            out[k] = f[k][...]
    return out


# --- part files -----------------------------------------------------------------------------------------------------


class PartWriter:
    """Commits blocks of complete units as numbered part files of one rank."""

    def __init__(self, directory: Path, rank: int):
        self.dir = directory
        self.rank = rank
        self.dir.mkdir(parents=True, exist_ok=True)
        for p in self.dir.glob(f".part-r{rank:04d}-*.tmp"):  # leftovers of this rank's killed writes
            p.unlink(missing_ok=True)
        seqs = [int(m.group(2)) for p in self.dir.iterdir() if (m := PART_RE.match(p.name)) and int(m.group(1)) == rank]
        self.seq = max(seqs) + 1 if seqs else 0

    def commit(self, block: dict) -> Path | None:
        if not block or not n_rows(block):
            return None
        name = f"part-r{self.rank:04d}-{self.seq:06d}.h5"
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".part-r{self.rank:04d}-", suffix=".tmp")
        os.close(fd)
        try:
            with h5py.File(tmp, "w") as f:
                _write_h5_columns(f, block)
                f.attrs["n_rows"] = n_rows(block)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            publish(tmp, self.dir / name)
            _fsync_dir(self.dir)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self.seq += 1
        return self.dir / name


def list_parts(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if PART_RE.match(p.name))


def done_ids(directory: Path) -> set[str]:
    """Ids already committed in the part files."""
    ids: set[str] = set()
    for p in list_parts(directory):
        with h5py.File(p, "r") as f:
            ids.update(f["id"].asstr()[...].tolist())
    return ids


def done_units(directory: Path) -> set[int]:
    units: set[int] = set()
    for p in list_parts(directory):
        with h5py.File(p, "r") as f:
            units.update(np.unique(f["unit"][...]).tolist())
    return units


# --- merge ------------------------------------------------------------------------------------------------------------


class _PartCache:
    def __init__(self, paths: list[Path], size: int = 32):
        self.paths = paths
        self.size = size
        self.cache: OrderedDict[int, dict] = OrderedDict()

    def get(self, k: int) -> dict:
        if k in self.cache:
            self.cache.move_to_end(k)
            return self.cache[k]
        with h5py.File(self.paths[k], "r") as f:
            block = _read_h5_columns(f)
        self.cache[k] = block
        if len(self.cache) > self.size:
            self.cache.popitem(last=False)
        return block


def _merge_plan(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, int]:
    """Which (part, row) goes to each output row: sorted by (unit, sub), first occurrence of each id kept."""
    part_l: list[np.ndarray] = []
    row_l: list[np.ndarray] = []
    unit_l: list[np.ndarray] = []
    sub_l: list[np.ndarray] = []
    id_l: list[np.ndarray] = []
    for k, p in enumerate(paths):
        with h5py.File(p, "r") as f:
            n = int(f.attrs["n_rows"])
            part_l.append(np.full(n, k, dtype=np.int64))
            row_l.append(np.arange(n, dtype=np.int64))
            unit_l.append(f["unit"][...])
            sub_l.append(f["sub"][...])
            id_l.append(f["id"].asstr()[...].astype(object))
    if not paths:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0
    part_idx, row_idx = np.concatenate(part_l), np.concatenate(row_l)
    units, subs, ids = np.concatenate(unit_l), np.concatenate(sub_l), np.concatenate(id_l)
    _, first = np.unique(ids.astype(str), return_index=True)
    n_dup = len(ids) - len(first)
    keep = np.sort(first)
    order = keep[np.lexsort((subs[keep], units[keep]))]
    return part_idx[order], row_idx[order], n_dup


def _sorted_slabs(paths: list[Path], part_idx: np.ndarray, row_idx: np.ndarray, slab: int = 16384) -> Iterator[dict]:
    cache = _PartCache(paths)
    for s in range(0, len(part_idx), slab):
        sel_p, sel_r = part_idx[s : s + slab], row_idx[s : s + slab]
        pieces = []
        positions = []
        for p in np.unique(sel_p):
            where = np.flatnonzero(sel_p == p)
            pieces.append(take(cache.get(int(p)), sel_r[where]))
            positions.append(where)
        block = concat(pieces)
        pos = np.concatenate(positions)
        inverse = np.empty_like(pos)
        inverse[pos] = np.arange(len(pos))
        yield take(block, inverse)


def _public_columns(block: dict) -> list[str]:
    return [k for k in block if k not in INTERNAL_COLUMNS]


def _write_hdf5(tmp: Path, slabs: Iterator[dict], meta: dict) -> int:
    total = 0
    atoms = 0
    with h5py.File(tmp, "w") as f:
        ptr = f.create_dataset("atom_ptr", shape=(1,), maxshape=(None,), dtype=np.int64, chunks=(65536,))
        ptr[0] = 0
        for block in slabs:
            n = n_rows(block)
            for k in _public_columns(block):
                v = block[k]
                if k not in f:
                    shape = (0, *v.shape[1:])
                    chunk = (16384, *v.shape[1:])
                    f.create_dataset(
                        k,
                        shape=shape,
                        maxshape=(None, *v.shape[1:]),
                        dtype=STR if k in STRING_COLUMNS else v.dtype,
                        chunks=chunk,
                        compression="gzip" if k in PER_ATOM_COLUMNS else None,
                    )
                d = f[k]
                start = d.shape[0]
                d.resize(start + len(v), axis=0)
                d[start:] = v.astype(object) if k in STRING_COLUMNS else v
            counts = np.cumsum(block["n_atoms"]) + atoms
            ptr.resize(total + n + 1, axis=0)
            ptr[total + 1 :] = counts
            total += n
            atoms = int(counts[-1]) if n else atoms
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["n_rows"] = total
        f.attrs["gfm_screening"] = json.dumps(meta, sort_keys=True)
    return total


def _arrow_table(block: dict) -> Any:
    import pyarrow as pa

    cols = {}
    offsets = np.concatenate([[0], np.cumsum(block["n_atoms"])]).astype(
        np.int32 if block["n_atoms"].sum() < 2**31 else np.int64
    )
    for k in _public_columns(block):
        v = block[k]
        if k in STRING_COLUMNS:
            cols[k] = pa.array(v.tolist(), type=pa.string())
        elif k == "forces":
            inner = pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), 3)
            cols[k] = (pa.ListArray if offsets.dtype == np.int32 else pa.LargeListArray).from_arrays(offsets, inner)
        elif k == "energies":
            cols[k] = (pa.ListArray if offsets.dtype == np.int32 else pa.LargeListArray).from_arrays(
                offsets, pa.array(v)
            )
        elif v.ndim == 2:
            cols[k] = pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1])
        else:
            cols[k] = pa.array(v)
    return pa.table(cols)


def _write_parquet(tmp: Path, slabs: Iterator[dict], meta: dict) -> int:
    import pyarrow.parquet as pq

    writer = None
    total = 0
    try:
        for block in slabs:
            table = _arrow_table(block)
            if writer is None:
                schema = table.schema.with_metadata(
                    {
                        "gfm_screening": json.dumps(meta, sort_keys=True),
                        "format": FORMAT,
                        "format_version": str(FORMAT_VERSION),
                    }
                )
                writer = pq.ParquetWriter(str(tmp), schema)
            writer.write_table(table.cast(writer.schema))
            total += table.num_rows
        if writer is None:
            raise OutputError("nothing to write: no rows")
    finally:
        if writer is not None:
            writer.close()
    return total


def merge_parts(directory: Path, out: Path, meta: dict) -> dict:
    """Merge all part files into ``out`` (atomically). Returns counts: rows, duplicates dropped."""
    fmt = output_format(out)
    paths = list_parts(directory)
    part_idx, row_idx, n_dup = _merge_plan(paths)
    if len(part_idx) == 0:
        raise OutputError(f"no results to merge in {directory}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    meta = {**meta, "n_rows": int(len(part_idx))}
    try:
        slabs = _sorted_slabs(paths, part_idx, row_idx)
        n = _write_hdf5(tmp, slabs, meta) if fmt == "hdf5" else _write_parquet(tmp, slabs, meta)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        publish(tmp, out)
        _fsync_dir(out.parent)
    finally:
        if tmp.exists():
            tmp.unlink()
    return {"rows": n, "duplicates_dropped": int(n_dup)}


def remove_parts(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


# --- reading results ------------------------------------------------------------------------------------------


def read_metadata(path: str | os.PathLike) -> dict:
    path = Path(path)
    if output_format(path) == "hdf5":
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise OutputError(f"{path} is not a gfm-ase screening output")
            return json.loads(f.attrs["gfm_screening"])
    import pyarrow.parquet as pq

    md = pq.read_schema(str(path)).metadata or {}
    if md.get(b"format") != FORMAT.encode():
        raise OutputError(f"{path} is not a gfm-ase screening output")
    return json.loads(md[b"gfm_screening"])


def read_results(path: str | os.PathLike, columns: Sequence[str] | None = None) -> dict:
    """All rows of a screening output as a column block (per-atom columns flat, split by ``n_atoms``)."""
    path = Path(path)
    if output_format(path) == "hdf5":
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise OutputError(f"{path} is not a gfm-ase screening output")
            names = [k for k in f.keys() if k != "atom_ptr"]
            if columns is not None:
                names = [k for k in names if k in set(columns) | {"id", "n_atoms"}]
            return _read_h5_columns(f, names)
    import pyarrow.parquet as pq

    if columns is not None:  # as for HDF5: asking for a column the file lacks (e.g. uncertainty) is not an error
        present = set(pq.read_schema(str(path)).names)
        columns = [c for c in columns if c in present]
    table = pq.read_table(
        str(path), columns=None if columns is None else list(dict.fromkeys(["id", "n_atoms", *columns]))
    )
    out = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if name in STRING_COLUMNS:
            out[name] = np.array(col.to_pylist(), dtype=object)
        elif name == "forces":
            out[name] = np.asarray(col.flatten().flatten().to_numpy(zero_copy_only=False)).reshape(-1, 3)
        elif name == "energies":
            out[name] = np.asarray(col.flatten().to_numpy(zero_copy_only=False))
        elif hasattr(col.type, "list_size"):
            out[name] = np.asarray(col.flatten().to_numpy(zero_copy_only=False)).reshape(len(col), -1)
        else:
            out[name] = col.to_numpy(zero_copy_only=False)
    return out


__all__ = [
    "OutputError",
    "PartWriter",
    "parts_dir",
    "list_parts",
    "done_ids",
    "done_units",
    "merge_parts",
    "remove_parts",
    "read_results",
    "read_metadata",
    "output_format",
    "FORMAT",
]
