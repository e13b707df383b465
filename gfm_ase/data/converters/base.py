"""What every converter shares: the item protocol, errors that name file and record, the skip report.

A reader is a generator ``read(path, **options)`` yielding :class:`Item` objects ``(where, build)``: ``where``
names the record inside the file (e.g. ``"record 17"`` or ``"mp-1234/mp-1234-0-3"``) and ``build()`` returns a
:class:`~gfm_ase.data.record.StructureRecord` (or raises). Building lazily lets the driver attribute every failure
to its record and either stop with a clear message or skip it (``--skip-bad``). A failure to read the file
itself (truncated, unparseable) is raised from the generator and is attributed to the file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
import os
from typing import Any, Callable, Iterable, Iterator

from gfm_ase.data.record import StructureRecord


class ConversionError(ValueError):
    """A file or record that cannot be converted; the message names both."""

    def __init__(self, path: str | os.PathLike[str], where: str | None, message: str) -> None:
        self.path = str(path)
        self.where = where
        self.message = message
        loc = f"{self.path}" + (f", {where}" if where else "")
        super().__init__(f"{loc}: {message}")


@dataclass
class Item:
    where: str
    build: Callable[[], StructureRecord]
    unconverted: tuple = ()  # labels the source record holds that the reader does not convert (counted, reported)


Reader = Callable[..., Iterator[Item]]
LABELS = ("energy", "forces", "stress", "magmoms", "charge", "spin")


@dataclass
class SkipReport:
    """Everything left out of a conversion with ``skip_bad=True``."""

    skipped: list[ConversionError] = field(default_factory=list)
    formats: set = field(default_factory=set)  # formats actually read
    n_files: int = 0
    labels: Counter = field(default_factory=Counter)  # structures written with each label
    unconverted: Counter = field(default_factory=Counter)  # structures holding a label that was not converted

    def count(self, rec: StructureRecord, unconverted: Iterable[str] = ()) -> None:
        """Count the labels of one converted record (and those its source held but the reader dropped)."""
        self.labels["structures"] += 1
        for name in LABELS:
            if getattr(rec, name, None) is not None:
                self.labels[name] += 1
        for name in unconverted:
            self.unconverted[name] += 1

    def label_summary(self) -> str:
        """e.g. ``energy 120, forces 120, stress 0 (present in the files but not converted: stress 120)``."""
        parts = [f"{k} {self.labels[k]}" for k in LABELS if k in ("energy", "forces", "stress") or self.labels[k]]
        text = ", ".join(parts)
        if self.unconverted:
            text += (
                " (present in the files but not converted: "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.unconverted.items()))
                + ")"
            )
        return text

    def add(self, err: ConversionError) -> None:
        self.skipped.append(err)

    def __len__(self) -> int:
        return len(self.skipped)

    def lines(self) -> list[str]:
        return [str(e) for e in self.skipped]


def want(d: dict, key: str, what: str = "record") -> Any:
    """``d[key]`` or a clear KeyError-turned-ValueError naming the missing field."""
    try:
        return d[key]
    except (KeyError, TypeError):
        raise ValueError(f"{what} has no {key!r} field") from None


def rel_id(path: Path, root: Path | None) -> str:
    """How a source is named in record ids: its path below ``root`` (the folder given on the command line, or the
    grandparent of a file given directly), e.g. ``Mo/training.json``."""
    try:
        rel = path.relative_to(root) if root is not None else Path(path.name)
    except ValueError:
        rel = Path(path.name)
    return path.name if str(rel) in ("", ".") else str(rel)
