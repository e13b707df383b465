"""The options every reader accepts, declared once: name, type, allowed values (units from a closed list), default.

``validate_options(format, options, where)`` runs once before a format's first file is read: an unknown or
misspelled option name, or a value of the wrong type or outside its closed list, is a
:class:`~gfm_ase.data.converters.base.ConversionError` that lists the valid options (or values) and suggests the
closest name. Nothing reaches a reader that it does not use, so ``stres_unit=GPa`` can no longer be ignored.
``describe_formats()`` is what ``gfm data formats`` prints.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from typing import Any, Iterable

from gfm_ase.data.converters.base import ConversionError
from gfm_ase.units import ENERGY_UNITS, LENGTH_UNITS, STRESS_UNITS


@dataclass(frozen=True)
class Option:
    name: str
    type: str  # "str", "index", "float+", "ints", "elements", "choice"
    default: Any
    description: str
    choices: tuple = ()  # closed list of allowed values (type "choice")

    def coerce(self, value: Any) -> Any:
        """The value in the type the reader expects, or a ValueError saying what is allowed."""
        t = self.type
        if t == "choice":
            if isinstance(value, str) and value in self.choices:
                return value
            same_case = [c for c in self.choices if str(c).lower() == str(value).lower()]
            close = same_case or difflib.get_close_matches(str(value), [str(c) for c in self.choices], n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"invalid value {value!r} for option {self.name!r}{hint}; allowed: {', '.join(self.choices)}"
            )
        if t == "str":
            if isinstance(value, (list, tuple, dict)):
                raise ValueError(f"option {self.name!r} takes one text value, got {value!r}")
            return str(value)
        if t == "index":  # ase.io index: an int or a slice string like ":" or "-1" or "::2"
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise ValueError(f"option {self.name!r} takes an ASE index (e.g. ':', '-1', '::10'), got {value!r}")
            text = str(value).strip()
            if not text or any(c not in "0123456789-:" for c in text) or text.count(":") > 2:
                raise ValueError(f"option {self.name!r} takes an ASE index (e.g. ':', '-1', '::10'), got {value!r}")
            return text
        if t == "float+":
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"option {self.name!r} takes a positive number, got {value!r}") from None
            if not v > 0 or v != v or v == float("inf"):
                raise ValueError(f"option {self.name!r} takes a positive number, got {value!r}")
            return v
        if t == "ints":  # phonopy supercell: 3 or 9 integers
            vals = value if isinstance(value, (list, tuple)) else str(value).replace(",", " ").split()
            try:
                ints = [int(v) for v in vals]
            except (TypeError, ValueError):
                raise ValueError(f"option {self.name!r} takes 3 or 9 integers (e.g. 2,2,2), got {value!r}") from None
            if len(ints) not in (3, 9) or any(isinstance(v, float) and v != int(v) for v in vals):
                raise ValueError(f"option {self.name!r} takes 3 or 9 integers (e.g. 2,2,2), got {value!r}")
            return ints
        if t == "elements":
            from ase.data import atomic_numbers

            vals = list(value) if isinstance(value, (list, tuple)) else str(value).replace(",", " ").split()
            bad = [v for v in vals if str(v) not in atomic_numbers or not str(v)[:1].isupper()]
            if not vals or bad:
                raise ValueError(f"option {self.name!r} takes element symbols (e.g. O,H), got {value!r}")
            return [str(v) for v in vals]
        raise AssertionError(f"unknown option type {t!r}")  # pragma: no cover

    def line(self) -> str:
        kind = (
            f"one of {', '.join(self.choices)}"
            if self.type == "choice"
            else {
                "str": "text",
                "index": "ASE index",
                "float+": "positive number",
                "ints": "3 or 9 integers",
                "elements": "element symbols",
            }[self.type]
        )
        default = "" if self.default is None else f"; default {self.default!r}"
        return f"{self.name}: {self.description} ({kind}{default})"


_STRESS = tuple(STRESS_UNITS)
_ENERGY = tuple(ENERGY_UNITS)
_LENGTH = tuple(LENGTH_UNITS)


def _group(what: str) -> Option:
    return Option("group", "str", None, f"group name of every record (default: {what})")


def _ase_formats() -> tuple:
    from ase.io.formats import ioformats

    return tuple(sorted(ioformats))


OPTIONS: dict[str, tuple[Option, ...]] = {
    "ase": (
        Option("index", "index", ":", "which frames of each file to read"),
        Option("format", "choice", None, "ASE io format name, when the file name does not tell", ()),
        Option("energy_key", "str", "energy", "calculator result, info or db key holding the energy"),
        Option("energy_unit", "choice", "eV", "unit of that energy", _ENERGY),
        Option("stress_unit", "choice", "eV/A^3", "unit of the stress in the file", _STRESS),
        Option("stress_sign", "choice", "tension", "sign convention of that stress", ("tension", "compression")),
        _group("the file stem, or the frame's info/db 'group'"),
    ),
    "mlearn-json": (
        Option("stress_unit", "choice", "kbar", "unit of outputs.virial_stress / outputs.stress", _STRESS),
    ),
    "fitsnap-json": (_group("the folder the file sits in"),),
    "deepmd": (
        _group("the system folder name"),
        Option("type_map", "elements", None, "element of each type, when the system has no type_map.raw"),
    ),
    "phonopy": (
        _group("the folder name"),
        Option("supercell", "ints", None, "supercell matrix, when only POSCAR-unitcell and FORCE_SETS exist"),
        Option("length_unit", "float+", None, "A per source length unit (default: the calculator's)"),
        Option("force_unit", "float+", None, "eV/A per source force unit (default: the calculator's)"),
    ),
    "mptrj": (
        Option(
            "energy_key",
            "choice",
            "uncorrected_total_energy",
            "which energy of each frame is the label",
            ("uncorrected_total_energy", "corrected_total_energy"),
        ),
    ),
    "aselmdb": (_group("the file stem, or the row's 'group'"),),
    "ani-h5": (
        Option(
            "preset",
            "choice",
            None,
            "dataset layout and units (default: detected from the dataset names)",
            ("ani1x", "spice", "t1x", "custom"),
        ),
        Option("numbers_key", "str", None, "dataset of atomic numbers (default: atomic_numbers or species)"),
        Option("coord_key", "str", None, "dataset of coordinates [M, n, 3]"),
        Option("energy_key", "str", None, "dataset of energies [M]"),
        Option("forces_key", "str", None, "dataset of forces [M, n, 3]"),
        Option("gradient_key", "str", None, "dataset of energy gradients [M, n, 3] (forces = -gradient)"),
        Option("length_unit", "choice", None, "unit of the coordinates", _LENGTH),
        Option("energy_unit", "choice", None, "unit of the energies (forces: energy unit / length unit)", _ENERGY),
    ),
}


def _spec(fmt: str) -> dict[str, Option]:
    spec = {o.name: o for o in OPTIONS[fmt]}
    if fmt == "ase":  # the list of ASE io formats is read from ase itself
        spec["format"] = Option(**{**spec["format"].__dict__, "choices": _ase_formats()})
    return spec


def validate_options(fmt: str, options: dict | None, where: str | os.PathLike[str]) -> dict:
    """``options`` checked against the options of ``fmt`` and coerced to their types; ``where`` names the
    source(s) in the error."""
    options = dict(options or {})
    if fmt not in OPTIONS:
        raise ConversionError(where, None, f"unknown format {fmt!r}; known: {', '.join(OPTIONS)}")
    spec = _spec(fmt)
    valid = ", ".join(spec) if spec else "(none)"
    out = {}
    for name, value in options.items():
        opt = spec.get(name)
        if opt is None:
            close = difflib.get_close_matches(name, list(spec), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConversionError(
                where,
                None,
                f"unknown option {name!r} for format {fmt}{hint}; valid options: {valid} (see gfm data formats)",
            )
        try:
            out[name] = opt.coerce(value)
        except ValueError as exc:
            raise ConversionError(where, None, f"format {fmt}: {exc}") from None
    return out


def describe_formats(formats: Iterable[str] | None = None) -> list[str]:
    lines = []
    for fmt in formats or OPTIONS:
        spec = OPTIONS[fmt]
        lines.append(f"{fmt}:" + ("" if spec else " (no options)"))
        for o in spec:
            if fmt == "ase" and o.name == "format":
                lines.append(f"  {o.name}: {o.description} (an ase.io format name, e.g. vasp-xml, espresso-out)")
            else:
                lines.append(f"  {o.line()}")
    return lines


__all__ = ["OPTIONS", "Option", "describe_formats", "validate_options"]
