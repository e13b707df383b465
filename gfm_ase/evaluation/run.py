"""``gfm eval``: predictions of one head written beside the labels of the input structures, with per-element error
tables where labels exist.

Order of work: the targets are checked (format, existence, prefix) before the model is loaded; the model is
loaded before any input is read; structures are read, evaluated in chunks and written to a temporary file that
replaces OUT only when everything succeeded (any error leaves OUT, and the tables, untouched).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from gfm_ase.data.converters.base import SkipReport
from gfm_ase.data.export import ExportError, ExportWriter, check_prefix, check_target
from gfm_ase.data.sources import iter_input_frames
from gfm_ase.evaluation.errors import ErrorTable
from gfm_ase.evaluation.predict import BatchPredictor
from gfm_ase.fileio import atomic_write_bytes

if TYPE_CHECKING:
    from gfm_ase.model.gfm import GFMModel

TABLE_SUFFIXES = {"json": (".json",), "markdown": (".md", ".markdown")}


def _check_table_target(path: str | os.PathLike | None, kind: str, overwrite: bool) -> Path | None:
    if path is None:
        return None
    path = Path(path)
    if path.suffix.lower() not in TABLE_SUFFIXES[kind]:
        raise ExportError(f"{path}: the {kind} error table needs a {' or '.join(TABLE_SUFFIXES[kind])} file name")
    if path.exists() and not overwrite:
        raise ExportError(f"{path} exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise ExportError(f"{path}: folder {path.parent} does not exist")
    return path


def evaluate_files(
    inputs: Sequence,
    out: str | os.PathLike,
    *,
    model: str | Path | GFMModel | None = None,
    head: str | None = None,
    prefix: str = "gfm_",
    overwrite: bool = False,
    fmt: str = "auto",
    options: dict | None = None,
    errors_json: str | os.PathLike | None = None,
    errors_markdown: str | os.PathLike | None = None,
    chunk: int = 512,
    log: Callable[[str], None] | None = None,
    **screener_options: Any,
) -> dict:
    """Evaluate every structure of ``inputs`` and write OUT (extxyz or ASE db, from its suffix).

    Further keys of frames ASE reads (``config_type``, ``REF_energy``, ...) are carried into OUT unchanged.
    Returns a summary: n_structures, head, out, the error table (``errors``; None without labels) and
    ``unconverted`` (labels the inputs held that the readers did not convert: not in the tables).
    """
    out = check_target(out, overwrite)
    check_prefix(prefix)
    tables = {
        "json": _check_table_target(errors_json, "json", overwrite),
        "markdown": _check_table_target(errors_markdown, "markdown", overwrite),
    }
    if not inputs:
        raise ExportError("no input files given")
    predictor = BatchPredictor(model, head, chunk=chunk, **screener_options)
    report = SkipReport()
    table = ErrorTable()
    frames = iter_input_frames(inputs, fmt, options=options, report=report)
    with ExportWriter(out, overwrite=overwrite, prefix=prefix) as writer:
        for (rec, extras), pred in predictor.stream(frames):
            writer.write(rec, pred, extras)
            table.add(rec.numbers, {"energy": rec.energy, "forces": rec.forces, "stress": rec.stress}, pred)
            if log is not None and writer.n % 1000 == 0:
                log(f"{writer.n} structures evaluated")
    errors = table.to_dict() if table.has_errors else None
    if errors is not None:
        if tables["json"] is not None:
            doc = {"inputs": [str(p) for p in inputs], "out": str(out), "head": predictor.head, **errors}
            atomic_write_bytes(tables["json"], (json.dumps(doc, indent=1) + "\n").encode())
        if tables["markdown"] is not None:
            atomic_write_bytes(tables["markdown"], (table.markdown() + "\n").encode())
    return {
        "n_structures": writer.n,
        "head": predictor.head,
        "out": str(out),
        "errors": errors,
        "markdown": table.markdown() if errors is not None else None,
        "unconverted": dict(report.unconverted),
    }


__all__ = ["evaluate_files"]
