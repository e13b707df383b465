"""What a suite returns and how it is written: summary.json, PNG plots and report.md (all written atomically)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from gfm_ase.fileio import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class SuiteResult:
    """The outcome of one suite.

    summary: headline numbers (what `summary.json` leads with); details: per-item numbers (per element,
    per structure, ...); sections: Markdown chunks of the report; plots: PNG file names relative to the outdir.
    """

    suite: str
    calculator: str
    summary: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)
    sections: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    title: str | None = None

    def to_json(self) -> dict[str, Any]:
        return jsonable(
            {
                "suite": self.suite,
                "calculator": self.calculator,
                "summary": self.summary,
                "notes": self.notes,
                "plots": self.plots,
                "details": self.details,
            }
        )

    def markdown(self, image_prefix: str = "") -> str:
        out = [f"# {self.title or 'Validation: ' + self.suite}", "", f"Calculator: `{self.calculator}`", ""]
        if self.summary:
            out += [
                "## Summary",
                "",
                table(
                    ["quantity", "value"],
                    [[k, fmt(v)] for k, v in self.summary.items() if not isinstance(v, (dict, list))],
                ),
                "",
            ]
        out += list(self.sections) + ([""] if self.sections else [])
        if self.plots:
            out += ["## Plots", ""] + [f"![{Path(p).stem}]({image_prefix}{p})\n" for p in self.plots]
        if self.notes:
            out += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        return "\n".join(out)

    def write(self, outdir: str | os.PathLike) -> Path:
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(outdir / "summary.json", json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n")
        md = self.markdown()
        atomic_write_text(outdir / "report.md", md)
        from gfm_ase.validation.html import markdown_to_html

        atomic_write_text(outdir / "report.html", markdown_to_html(md, self.title or f"Validation: {self.suite}"))
        return outdir


def shift_headers(markdown: str, by: int = 1) -> str:
    """Demote every Markdown header by ``by`` levels (to nest a suite report inside a combined one)."""
    return "\n".join(("#" * by + line) if line.startswith("#") else line for line in markdown.splitlines())


def jsonable(obj: Any) -> Any:
    """Plain-JSON copy: numpy scalars/arrays to Python, NaN/inf to None, Paths to str."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(Path(path), text.encode())


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 110) -> str:
    """Save a matplotlib figure as PNG atomically and close it; returns the file name."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path).name


def pyplot() -> ModuleType:
    """matplotlib.pyplot on the non-interactive Agg backend (safe on headless machines)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if not math.isfinite(v):
            return "–"
        if v == 0:
            return "0"
        if abs(v) >= 1e5 or abs(v) < 1e-3:
            return f"{v:.{digits - 1}e}"
        return f"{v:.{digits}g}"
    return str(v)


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; cells are formatted with :func:`fmt`."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in r) + " |")
    return "\n".join(lines)
