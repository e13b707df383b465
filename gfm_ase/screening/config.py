"""Typed screening options, validated once, before a model is loaded or an output is touched.

:class:`ScreenerConfig` holds what the engine (:class:`gfm_ase.screening.Screener`) needs: device, precision,
properties, batch budget, element and geometry checks, compile, threads, uncertainty, dispersion.
:class:`ScreenConfig` is one run of :func:`gfm_ase.screening.screen`: a ``screener`` config plus the run's own
options (hull references, formation energies, shortlist, commit interval, shards, overwrite).

Both are strict (:class:`gfm_ase.config.StrictModel`: unknown options are errors) and frozen. Every problem is
reported as one :class:`ScreenConfigError` line naming the option by its dotted path (``screener.max_atoms: ...``).
The command line builds a :class:`ScreenConfig` from its parsed options with :meth:`ScreenConfig.from_options`
(flat names, the engine's options sorted into ``screener``); the Python API accepts the same flat keywords.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, ValidationError, field_validator

from gfm_ase.config import StrictModel
from gfm_ase.dispersion import check_dispersion_option
from gfm_ase.graph.sanity import DEFAULT_FACTOR, check_factor
from gfm_ase.screening.budget import check_budget_options
from gfm_ase.screening.hull import ENERGY_SOURCES
from gfm_ase.screening.planner import OVERSIZE_POLICIES

PROPERTIES = ("energy", "forces", "stress", "energies")


class ScreenConfigError(ValueError):
    """Screening options that cannot be used (one line, naming each option by its dotted path)."""


def _one_line(exc: ValidationError, what: str) -> ScreenConfigError:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err.get("loc", ())) or "(options)"
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = "unknown option"
        parts.append(f"{loc}: {msg}")
    return ScreenConfigError(f"invalid {what}: " + "; ".join(parts))


class _Frozen(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScreenerConfig(_Frozen):
    """Options of the screening engine (see :class:`gfm_ase.screening.Screener` for what each one does)."""

    device: str = Field("auto", description="cpu, cuda, cuda:1, ... (auto: cuda if available)")
    dtype: str = Field("float32", description="float64, float32 or bfloat16")
    properties: tuple[str, ...] = Field(("energy",), description="energy (always), forces, stress, energies")
    max_atoms: int | None = Field(None, description="atoms per batch (None: from the model and device)")
    max_edges: int | None = Field(None, description="edges per batch (None: from the model and device)")
    max_memory: float | None = Field(None, description="GiB one batch may use (None: from the device)")
    oversize: str = Field("alone", description="a structure above the batch budget: 'alone' or 'refuse'")
    allow_unknown_elements: bool = False
    min_distance: float = Field(0.3, ge=0.0, description="Angstrom; closer atoms are a StructureError")
    min_distance_factor: float = Field(DEFAULT_FACTOR, description="geometry sanity check (0 or None disables)")
    compile: bool = False
    prefetch: int = Field(4, ge=1, description="batches built ahead of the model")
    uncertainty: bool = True
    workers: int | None = Field(None, ge=1, description="graph-building threads (None: 1 on CPU, up to 8 on GPU)")
    tune_allocator: bool = True
    dispersion: str | None = Field(None, description="None or a DFT-D3 variant: d3bj, d3bj-atm, d3zero")

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, v: Any) -> Any:
        return str(v) if type(v).__name__ == "device" else v  # a torch.device

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, v: str) -> str:
        from gfm_ase.runtime import precision_info

        precision_info(v, what="dtype")
        return v

    @field_validator("properties", mode="before")
    @classmethod
    def _properties(cls, v: Any) -> tuple[str, ...]:
        if isinstance(v, str) or not hasattr(v, "__iter__"):
            raise ValueError(f"properties must be a list of names from {PROPERTIES}, got {v!r}")
        props = tuple(dict.fromkeys(["energy", *v]))
        bad = [p for p in props if p not in PROPERTIES]
        if bad:
            raise ValueError(f"unknown properties {bad}; choose from {PROPERTIES}")
        return props

    @field_validator("max_atoms", "max_edges", "max_memory", mode="before")
    @classmethod
    def _budget(cls, v: Any, info: Any) -> Any:
        check_budget_options(**{info.field_name: v})
        return v

    @field_validator("oversize")
    @classmethod
    def _oversize(cls, v: str) -> str:
        if v not in OVERSIZE_POLICIES:
            raise ValueError(f"oversize must be one of {OVERSIZE_POLICIES}, got {v!r}")
        return v

    @field_validator("min_distance_factor", mode="before")
    @classmethod
    def _factor(cls, v: Any) -> float:
        return check_factor(v)

    @field_validator("dispersion")
    @classmethod
    def _dispersion(cls, v: str | None) -> str | None:
        check_dispersion_option(v)
        return None if v is None else v.lower()

    @classmethod
    def build(cls, config: "ScreenerConfig | None" = None, **options: Any) -> "ScreenerConfig":
        """``config`` (default: all defaults) with ``options`` on top, validated; ScreenConfigError otherwise."""
        base = config.model_dump() if config is not None else {}
        try:
            return cls(**{**base, **options})
        except ValidationError as exc:
            raise _one_line(exc, "screening options") from None


class ScreenConfig(_Frozen):
    """One run of :func:`gfm_ase.screening.screen`: the engine's options and the run's own."""

    screener: ScreenerConfig = Field(default_factory=lambda: ScreenerConfig.model_validate({}))
    hull_references: tuple[str, ...] | None = Field(None, description="competing phases (any input format)")
    hull_energies: str = Field("model", description="energies of the hull references: 'model' or 'stored'")
    formation: bool = Field(True, description="formation energies from the hull or the head's references")
    shortlist: int = Field(0, ge=0, description="write the K best structures to OUT.shortlist.csv")
    shortlist_by: str | None = Field(None, description="column to rank by (None: e_above_hull, formation, energy)")
    chunk_rows: int = Field(4096, ge=1, description="commit results every this many structures")
    chunk_seconds: float = Field(60.0, gt=0.0, description="... or after this many seconds")
    rank: int | None = Field(None, description="this process's rank (None: from the launcher)")
    world_size: int | None = Field(None, description="number of ranks (None: from the launcher)")
    overwrite: bool = Field(False, description="discard an existing output or partial results")
    wait_timeout: float | None = Field(None, gt=0.0, description="seconds rank 0 waits for the others")

    @field_validator("hull_references", mode="before")
    @classmethod
    def _paths(cls, v: Any) -> Any:
        if v is None or isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
            return v if v is None else (str(v),)
        return tuple(str(p) for p in v) or None

    @field_validator("hull_energies")
    @classmethod
    def _hull_energies(cls, v: str) -> str:
        if v not in ENERGY_SOURCES:
            raise ValueError(f"hull energies must be one of {ENERGY_SOURCES}, got {v!r}")
        return v

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The flat option names :meth:`from_options` takes (the engine's and the run's)."""
        return (*ScreenerConfig.model_fields, *(k for k in cls.model_fields if k != "screener"))

    @classmethod
    def from_options(cls, config: "ScreenConfig | None" = None, **options: Any) -> "ScreenConfig":
        """A config from flat options (``dtype=..., shortlist=...``; the engine's go into ``screener``), on top of
        ``config`` when given; validated once, ScreenConfigError naming the option otherwise."""
        base = config.model_dump() if config is not None else {}
        engine = {k: options.pop(k) for k in list(options) if k in ScreenerConfig.model_fields}
        doc = {**base, **options, "screener": {**base.get("screener", {}), **engine}}
        try:
            return cls(**doc)
        except ValidationError as exc:
            raise _one_line(exc, "screening options") from None


__all__ = ["PROPERTIES", "ScreenConfig", "ScreenConfigError", "ScreenerConfig"]
