"""Typed model configuration, validated once (pydantic; unknown keys are rejected)."""

from __future__ import annotations

import re
from typing import Any, Literal

from ase.data import atomic_numbers
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

MODEL_FORMAT_VERSION: Literal[1] = 1


class StrictModel(BaseModel):
    """Base for every config in gfm-ase: unknown keys are an error, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class HeadIdentity(StrictModel):
    """What a head is: its name and level-of-theory metadata (the first part of :class:`HeadSpec`)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$", description="head name (used by GFMCalculator(head=...))")
    level_of_theory: str = Field(default="unknown", description="e.g. 'PBE (VASP, PAW)', 'GFN2-xTB', 'EMT'")
    code: str = Field(default="unknown", description="program that produced the labels")
    family: str | None = Field(default=None, description="heads of one family estimate uncertainty from their spread")
    dispersion_functional: str | None = Field(
        default=None,
        description="the DFT functional whose D3 damping parameters apply to this head (e.g. 'pbe', 'r2scan'); "
        "None: taken from the family (pbe, mp2020 -> PBE), no D3 for others (gfm_ase.dispersion)",
    )
    description: str = Field(default="", description="free text stored in the model metadata")
    fidelity: str | None = Field(
        default=None,
        description="the label fidelity (one of the model's `fidelities`) this head evaluates at: its learned "
        "vector conditions the trunk (gfm_ase.model.fidelity); None: no fidelity vector",
    )

    def identity(self) -> dict[str, Any]:
        """The :class:`HeadIdentity` fields of this head (to build a :class:`HeadConfig` from a spec)."""
        return self.model_dump(include=set(HeadIdentity.model_fields))


class HeadSpec(HeadIdentity):
    """A head as it is built: what it is and the sizes of its MLP. This is what a training run is asked for (the
    pretraining config's ``heads``, fine-tuning's ``head``); a trained head, :class:`HeadConfig`, adds what was
    fitted on its data."""

    hidden: list[int] = Field(default_factory=lambda: [128], description="hidden layer sizes of the head MLP")


class HeadConfig(HeadSpec):
    """One output head = one level of theory (dataset family), with its machine-readable metadata."""

    elements: list[str] = Field(default_factory=list)  # elements covered by the training data (empty: any)
    reference_energies: dict[str, float] = Field(default_factory=dict)  # eV per atom of each element
    scale: float = 1.0  # atomic energy = scale * mlp(features) + shift + reference[Z]
    shift: float = 0.0
    datasets: list[dict[str, Any]] = Field(default_factory=list)  # provenance of the training data
    metrics: dict[str, Any] = Field(default_factory=dict)  # held-out errors etc.

    @field_validator("elements")
    @classmethod
    def _known_elements(cls, v: list[str]) -> list[str]:
        bad = [e for e in v if e not in atomic_numbers]
        if bad:
            raise ValueError(f"unknown element symbols {bad}")
        return sorted(set(v), key=lambda e: atomic_numbers[e])

    @field_validator("reference_energies")
    @classmethod
    def _known_ref(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [e for e in v if e not in atomic_numbers]
        if bad:
            raise ValueError(f"unknown element symbols in reference_energies: {bad}")
        return v

    @property
    def atomic_numbers(self) -> list[int]:
        return [atomic_numbers[e] for e in self.elements]


class TrunkConfig(StrictModel):
    """The shared message-passing trunk. ``name`` picks the architecture in the trunk registry; ``options`` are
    validated by that architecture's own config class."""

    name: str = "painn"
    options: dict[str, Any] = Field(default_factory=dict)

    # Checked here, when a config is read, so that a wrong name or a misspelled option fails with its dotted path
    # (``model.trunk.options.num_featres``) before anything runs. The options are kept as given (defaults are
    # filled in when the model is built). The registry import loads the built-in trunks (gfm_ase.model).
    @field_validator("name")
    @classmethod
    def _known_trunk(cls, v: str) -> str:
        from gfm_ase.model.registry import trunk_options_class

        trunk_options_class(v)
        return v

    @field_validator("options")
    @classmethod
    def _valid_options(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from gfm_ase.model.registry import trunk_options_class

        if "name" in info.data:  # else the name itself was invalid and is reported
            trunk_options_class(info.data["name"]).model_validate(v)
        return v


class PairRepulsionConfig(StrictModel):
    """A fixed short-range pair repulsion added to every head's energy (:mod:`gfm_ase.model.repulsion`): the ZBL
    screened nuclear repulsion, switched off smoothly at ``cutoff_factor`` times the sum of the two atoms'
    covalent radii. The learned part of the model is trained on the residual."""

    kind: Literal["zbl"] = Field(default="zbl", description="the pair potential (ZBL universal screened repulsion)")
    cutoff_factor: float = Field(
        default=1.0, gt=0.0, le=2.0, description="the term vanishes beyond this multiple of the covalent-radius sum"
    )
    envelope_exponent: int = Field(
        default=6, ge=2, le=12, description="exponent p of the polynomial switching envelope"
    )


class ModelArchitecture(StrictModel):
    """A model without its heads: name, trunk and pair term (the pretraining config's ``model`` section is one)."""

    name: str = Field(default="gfm-model", description="model name written into model.json")
    trunk: TrunkConfig = Field(default_factory=TrunkConfig, description="trunk architecture and its options")
    repulsion: PairRepulsionConfig | None = Field(
        default=None,
        description="fixed ZBL pair repulsion added to every head (gfm_ase.model.repulsion), part of the model, "
        "not a head; the learned part trains on the residual. None: no pair term",
    )
    fidelities: list[str] = Field(
        default_factory=list,
        description="names of the label fidelities the trunk tells apart (e.g. real DFT and a surrogate of it): "
        "each gets a learned vector added to every atom's initial features (gfm_ase.model.fidelity); a "
        "dataset trains at one, a head evaluates at one. Empty: no fidelity embedding",
    )

    @field_validator("fidelities")
    @classmethod
    def _fidelity_names(cls, v: list[str]) -> list[str]:
        bad = [f for f in v if not re.fullmatch(r"[A-Za-z0-9_\-]+", f)]
        if bad:
            raise ValueError(f"fidelity names may use letters, digits, '_' and '-' only: {bad}")
        if len(set(v)) != len(v):
            raise ValueError(f"duplicate fidelity names: {v}")
        return v


class ModelConfig(ModelArchitecture):
    """A complete model: its architecture and its trained heads (what model.json stores)."""

    format_version: Literal[1] = MODEL_FORMAT_VERSION
    heads: list[HeadConfig]

    @model_validator(mode="after")
    def _unique_heads(self) -> "ModelConfig":
        names = [h.name for h in self.heads]
        if not names:
            raise ValueError("a model needs at least one head")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate head names: {names}")
        bad = {h.name: h.fidelity for h in self.heads if h.fidelity is not None and h.fidelity not in self.fidelities}
        if bad:
            raise ValueError(f"heads {bad} name fidelities the model does not have (fidelities: {self.fidelities})")
        return self

    def head_fidelity_index(self, name: str) -> int:
        """Index of head ``name``'s fidelity in :attr:`fidelities`, -1 for none."""
        fid = self.head(name).fidelity
        return -1 if fid is None else self.fidelities.index(fid)

    def head(self, name: str) -> HeadConfig:
        for h in self.heads:
            if h.name == name:
                return h
        raise KeyError(name)
