"""The pretraining configuration: one typed pydantic model, loaded from YAML and validated once.

Every option is documented by its ``description`` (``gfm pretrain --show-options`` prints them all); unknown keys
are rejected at every level. Relative dataset paths are resolved against the directory of the YAML file, so a
config and its data can be moved together. ``$VARS`` and ``~`` in paths are expanded.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from gfm_ase.config import HeadSpec, ModelArchitecture, StrictModel, TrunkConfig


class ConfigError(ValueError):
    """An invalid pretraining configuration (message names the offending option)."""


class SplitSpec(StrictModel):
    """How a dataset is split into train/val/test (gfm_ase.data.splits.split_indices)."""

    fractions: tuple[float, float, float] = Field(default=(0.8, 0.1, 0.1), description="train, val, test fractions")
    seed: int = Field(default=0, description="seed of the split (independent of the training seed)")
    by: Literal["structure", "group"] = Field(
        default="structure", description="'group' keeps all structures of one group (trajectory, material) in one split"
    )

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f < 0 for f in v) or abs(sum(v) - 1.0) > 1e-6 or v[0] <= 0:
            raise ValueError(f"fractions must be >= 0, sum to 1 and have a non-zero train part, got {v}")
        return v


class LabelFilterSpec(StrictModel):
    """Structures whose labels exceed these bounds are left out of every split of the dataset, and counted in the
    model's dataset provenance (``label_filter``). Meant for surrogate labels: a teacher model far outside its own
    training data can return absurd stresses or forces (e.g. SevenNet-0: |stress| up to 80 eV/A^3 on compressed
    generated cells). Real DFT is better kept whole."""

    max_abs_stress: float | None = Field(
        default=None,
        gt=0.0,
        description="drop structures with a stress component beyond this, eV/A^3 (1 eV/A^3 = 160 GPa)",
    )
    max_abs_force: float | None = Field(
        default=None, gt=0.0, description="drop structures with an atom whose force norm exceeds this, eV/A"
    )


class DatasetSpec(StrictModel):
    """One dataset: a gfm-ase store file (or shard folder) whose structures train one head."""

    name: str = Field(pattern=r"^[A-Za-z0-9_\-.]+$", description="dataset name used in logs and metadata")
    path: str = Field(description="store path; relative paths are relative to the config file")
    head: str = Field(description="name of the head (see `heads`) this dataset trains")
    loss_weight: float = Field(default=1.0, ge=0.0, description="multiplies this dataset's loss terms")
    sampling_weight: float = Field(default=1.0, gt=0.0, description="multiplies n_i^alpha in the sampling probability")
    split: SplitSpec = Field(default_factory=SplitSpec, description="train/val/test split")
    max_structures: int | None = Field(
        default=None, ge=1, description="use at most this many structures (a seeded random subset; None: all)"
    )
    exclude_covered_by: list[str] = Field(
        default_factory=list,
        description="drop this dataset's structures whose set of elements is also the element "
        "set of a structure in any of these datasets (e.g. surrogate pure-Si cells "
        "where a real-DFT Si set exists): there the listed datasets alone train "
        "the head",
    )
    exclude_min_structures: int = Field(
        default=1,
        ge=1,
        description="exclude_covered_by drops an element set only where the listed datasets hold at least this "
        "many structures of it (1: any; a single stray structure, such as the one pure-In cell of FitSNAP InP, then "
        "does not remove the surrogate's whole elemental set)",
    )
    label_filter: LabelFilterSpec | None = Field(
        default=None, description="leave out structures with absurd labels (counted in the provenance); None: keep all"
    )
    fidelity: str | None = Field(
        default=None,
        description="the label fidelity (one of model.fidelities) this dataset trains at: its learned vector "
        "conditions the trunk on this dataset's structures (gfm_ase.model.fidelity); None: its head's fidelity",
    )
    energy_offsets: dict[str, float] | None = Field(
        default=None,
        description="eV per atom of each element subtracted from this dataset's energies before training and "
        "evaluation: aligns a dataset computed with other settings (another DFT code, PAW set or "
        "correction scheme) to the energy scale of the head's other datasets. Measured, not "
        "guessed: pretraining/corpus/align_references.py fits them on structures of this dataset "
        "relabelled by the head's reference source. Every element of the dataset needs an entry",
    )

    @field_validator("energy_offsets")
    @classmethod
    def _offsets(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is None:
            return v
        from ase.data import atomic_numbers

        bad = [k for k in v if k not in atomic_numbers or k == "X"]
        if bad:
            raise ValueError(f"energy_offsets: unknown element symbols {bad}")
        return v


class SamplingSpec(StrictModel):
    """The weighted multi-dataset sampler: p_i ∝ sampling_weight_i * n_i^alpha over the training splits."""

    alpha: float = Field(
        default=0.5, ge=0.0, le=1.0, description="0: uniform over datasets, 1: proportional to size, between: tempered"
    )
    batch_size: int = Field(default=16, ge=1, description="GLOBAL structures per optimizer step (split over ranks)")
    steps_per_epoch: int = Field(default=100, ge=1, description="an epoch is this many optimizer steps")
    epochs: int = Field(default=10, ge=1, description="number of epochs (total steps = epochs * steps_per_epoch)")


class LossStage(StrictModel):
    """From ``start`` (a fraction of the total steps) on, the weights given here replace the base weights.

    The usual use is a second stage with a larger energy weight (as in MACE's two-stage training): forces dominate
    the gradient early and energies lag behind; raising the energy weight for the last 10-30 % of the steps
    recovers them at a small cost in forces."""

    start: float = Field(gt=0.0, lt=1.0, description="fraction of the total steps at which this stage begins")
    energy_weight: float | None = Field(
        default=None, ge=0.0, description="energy weight from here on (None: unchanged)"
    )
    forces_weight: float | None = Field(default=None, ge=0.0, description="force weight from here on (None: unchanged)")
    stress_weight: float | None = Field(
        default=None, ge=0.0, description="stress weight from here on (None: unchanged)"
    )


class LossSpec(StrictModel):
    """Per-atom energy, force and stress loss terms."""

    kind: Literal["mse", "mae", "huber"] = Field(default="huber", description="element-wise loss function")
    huber_delta: float = Field(default=0.01, gt=0.0, description="Huber transition point, in normalised units")
    energy_weight: float = Field(default=1.0, ge=0.0, description="weight of the per-atom energy term")
    forces_weight: float = Field(default=10.0, ge=0.0, description="weight of the force term (mean over components)")
    stress_weight: float = Field(
        default=0.0, ge=0.0, description="weight of the stress term (mean over Voigt components)"
    )
    normalize_by_head: bool = Field(
        default=True,
        description="divide energy-per-atom and force errors by the head's scale, so heads of different "
        "magnitude contribute comparably (stress errors are divided by scale / 10 A^3)",
    )
    stages: list[LossStage] = Field(
        default_factory=list,
        description="later stages with other weights, e.g. [{start: 0.8, energy_weight: "
        "10}] (starts strictly increasing)",
    )

    @model_validator(mode="after")
    def _stages_ordered(self) -> LossSpec:
        starts = [st.start for st in self.stages]
        if any(b <= a for a, b in zip(starts, starts[1:])):
            raise ValueError(f"loss.stages must have strictly increasing starts, got {starts}")
        return self

    def at(self, step: int, total_steps: int) -> "LossSpec":
        """The weights in force at optimizer step ``step`` (0-based) of ``total_steps`` (stages cumulate)."""
        spec = self
        for st in self.stages:
            if step >= st.start * total_steps:
                upd = {
                    k: getattr(st, k)
                    for k in ("energy_weight", "forces_weight", "stress_weight")
                    if getattr(st, k) is not None
                }
                spec = spec.model_copy(update=upd)
        return spec

    def max_weight(self, term: str) -> float:
        """The largest weight ``term`` ("energy", "forces", "stress") has in any stage."""
        key = f"{term}_weight"
        return max([getattr(self, key)] + [getattr(st, key) for st in self.stages if getattr(st, key) is not None])


class AdamWSpec(StrictModel):
    """AdamW with linear warmup and gradient-norm clipping: the part of the optimizer settings that pretraining and
    fine-tuning share (the end of the cosine decay is stated differently: ``OptimSpec.min_lr``, fine-tuning's
    ``min_lr_factor``)."""

    lr: float = Field(default=1e-3, gt=0.0, description="peak learning rate")
    warmup_steps: int = Field(default=100, ge=0, description="linear warmup from 0 to lr over this many steps")
    weight_decay: float = Field(default=0.0, ge=0.0, description="AdamW decoupled weight decay (matrices only)")
    betas: tuple[float, float] = Field(default=(0.9, 0.999), description="Adam betas")
    eps: float = Field(default=1e-8, gt=0.0, description="Adam epsilon")
    grad_clip: float | None = Field(default=10.0, gt=0.0, description="clip the global gradient norm (None: off)")


class OptimSpec(AdamWSpec):
    """AdamW with linear warmup and cosine decay, gradient-norm clipping."""

    min_lr: float = Field(default=1e-5, ge=0.0, description="learning rate at the end of the cosine decay")


class EMASpec(StrictModel):
    """Exponential moving average of the weights, used for validation and the final model."""

    enabled: bool = Field(default=True, description="keep an EMA of the weights")
    decay: float = Field(default=0.999, ge=0.0, lt=1.0, description="EMA decay per optimizer step")
    warmup: bool = Field(default=True, description="use min(decay, (1+t)/(10+t)) so early averages are not stale")


class HeadInitSpec(StrictModel):
    """How each head's constants are fitted on its training split before training."""

    scale: Literal["force_rms", "energy_std", "none"] = Field(
        default="force_rms", description="scale = RMS of force components (falls back to energy_std without forces)"
    )
    shift: Literal["mean", "none"] = Field(
        default="mean", description="shift = mean per-atom energy after subtracting the reference energies"
    )
    max_structures: int = Field(default=20000, ge=1, description="structures per dataset used for the statistics")


class ParallelSpec(StrictModel):
    """Distributed set-up (torch.distributed)."""

    launcher: Literal["auto", "torchrun", "mpi", "none"] = Field(
        default="auto",
        description="auto: torchrun environment if present, else MPI if launched by mpiexec/srun, else one process",
    )
    backend: Literal["auto", "gloo", "nccl"] = Field(default="auto", description="auto: nccl on GPU, gloo on CPU")
    mode: Literal["data", "multitask"] = Field(
        default="data",
        description="data: every rank holds every head; multitask: ranks are split into head groups, each "
        "rank holds only its group's heads and samples only their datasets",
    )
    head_groups: list[list[str]] | None = Field(
        default=None, description="multitask: heads of each group (None: one group per head)"
    )
    group_sizes: list[int] | None = Field(
        default=None, description="multitask: ranks per group (None: proportional to the groups' sampling shares)"
    )
    timeout_s: float = Field(default=1800.0, gt=0, description="collective-operation timeout")


class CheckpointSpec(StrictModel):
    """Resumable training checkpoints (OUTDIR/checkpoints/step_N, written atomically)."""

    every_steps: int = Field(default=500, ge=1, description="write a resumable training checkpoint every N steps")
    keep: int = Field(default=3, ge=1, description="keep the last N checkpoints")


class ValidationSpec(StrictModel):
    """Per-dataset and per-head metrics on the validation splits (EMA weights when enabled)."""

    every_steps: int | None = Field(
        default=None, ge=1, description="validate every N steps (None: at the end of epochs)"
    )
    batch_size: int = Field(default=32, ge=1, description="structures per evaluation batch")
    max_structures: int | None = Field(default=None, ge=1, description="cap on validation structures per dataset")


class LoggingSpec(StrictModel):
    """OUTDIR/logs/train.csv and val.csv (always), TensorBoard (optional), progress bar."""

    every_steps: int = Field(default=10, ge=1, description="write a train.csv row every N steps")
    tensorboard: Literal["auto", "on", "off"] = Field(
        default="auto", description="auto: write TensorBoard events when the tensorboard package is installed"
    )
    progress: bool = Field(default=True, description="show a progress bar (rank 0, when stderr is a terminal)")


class DataLoadingSpec(StrictModel):
    """How graphs are built from the stores."""

    num_workers: int = Field(default=0, ge=0, description="DataLoader worker processes building graphs per rank")
    cache_graphs: bool = Field(default=True, description="keep built graphs in memory (small datasets)")


class ModelSpec(ModelArchitecture):
    """The model's architecture without heads (gfm_ase.config.ModelArchitecture) and where its weights start."""

    init_from: str | None = Field(
        default=None,
        description="start from this trained model (built-in name, directory or URL) instead of random "
        "weights: same trunk and heads; its heads' reference energies, scale and shift are kept "
        "(a warm-started continuation, e.g. adding the pair term or more data); a relative directory "
        "is looked up next to the config file first",
    )


class PretrainConfig(StrictModel):
    """A complete pretraining run."""

    seed: int = Field(default=0, description="seed of weight initialisation and sampling")
    precision: Literal["float32", "bfloat16", "float64"] = Field(
        default="float32", description="bfloat16 = autocast with float32 master weights"
    )
    device: str = Field(default="auto", description="'auto' (cuda if available), 'cpu' or 'cuda'")
    model: ModelSpec = Field(default_factory=lambda: ModelSpec())
    heads: list[HeadSpec] = Field(description="output heads (levels of theory)")
    datasets: list[DatasetSpec] = Field(description="training datasets, each mapped to one head")
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)
    loss: LossSpec = Field(default_factory=LossSpec)
    optim: OptimSpec = Field(default_factory=OptimSpec)
    ema: EMASpec = Field(default_factory=EMASpec)
    head_init: HeadInitSpec = Field(default_factory=HeadInitSpec)
    parallel: ParallelSpec = Field(default_factory=ParallelSpec)
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec)
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    logging: LoggingSpec = Field(default_factory=LoggingSpec)
    data: DataLoadingSpec = Field(default_factory=DataLoadingSpec)
    base_dir: str | None = Field(
        default=None,
        description="directory relative dataset paths are resolved against "
        "(set from the YAML file's location when loaded)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> PretrainConfig:
        heads = [h.name for h in self.heads]
        if not heads:
            raise ValueError("at least one head is needed")
        if len(set(heads)) != len(heads):
            raise ValueError(f"duplicate head names: {heads}")
        names = [d.name for d in self.datasets]
        if not names:
            raise ValueError("at least one dataset is needed")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate dataset names: {names}")
        for d in self.datasets:
            if d.head not in heads:
                raise ValueError(f"dataset {d.name!r} maps to unknown head {d.head!r} (heads: {heads})")
            bad = [x for x in d.exclude_covered_by if x not in names or x == d.name]
            if bad:
                raise ValueError(
                    f"dataset {d.name!r}: exclude_covered_by names {bad}, which are not other datasets ({names})"
                )
        fids = self.model.fidelities
        named = [(h.name, h.fidelity) for h in self.heads] + [(d.name, d.fidelity) for d in self.datasets]
        bad_fid = {name: f for name, f in named if f not in (None, *fids)}
        if bad_fid:
            raise ValueError(f"{bad_fid} name fidelities that model.fidelities does not declare ({fids})")
        unused = [h for h in heads if not any(d.head == h for d in self.datasets)]
        if unused:
            raise ValueError(f"heads {unused} have no dataset")
        p = self.parallel
        if p.head_groups is not None:
            flat = [h for g in p.head_groups for h in g]
            if sorted(flat) != sorted(heads) or any(len(g) == 0 for g in p.head_groups):
                raise ValueError(f"parallel.head_groups must partition the heads {heads}, got {p.head_groups}")
        if p.group_sizes is not None:
            n_groups = len(p.head_groups) if p.head_groups is not None else len(heads)
            if len(p.group_sizes) != n_groups or min(p.group_sizes) < 1:
                raise ValueError(f"parallel.group_sizes needs {n_groups} positive entries, got {p.group_sizes}")
        if (p.head_groups is not None or p.group_sizes is not None) and p.mode != "multitask":
            raise ValueError("parallel.head_groups/group_sizes only apply with parallel.mode: multitask")
        return self

    # --- helpers ----------------------------------------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        return self.sampling.epochs * self.sampling.steps_per_epoch

    def dataset_path(self, ds: DatasetSpec) -> Path:
        p = Path(os.path.expanduser(os.path.expandvars(ds.path)))
        if not p.is_absolute() and self.base_dir is not None:
            p = Path(self.base_dir) / p
        return p.resolve()

    def head_of(self, name: str) -> HeadSpec:
        for h in self.heads:
            if h.name == name:
                return h
        raise KeyError(name)

    def fingerprint(self, exclude: tuple[str, ...] = ()) -> str:
        doc = self.model_dump(mode="json", exclude=set(exclude))
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


# options that may change between a run and its resumption (everything else must match exactly)
RESUMABLE_CHANGES = ("checkpoint", "logging", "validation", "base_dir", "data", "parallel")


def load_config(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> PretrainConfig:
    """Read and validate a YAML config. ``overrides`` maps dotted keys ("sampling.epochs") to values."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} must hold a mapping of options, got {type(doc).__name__}")
    for key, value in (overrides or {}).items():
        _set_dotted(doc, key, value)
    doc.setdefault("base_dir", str(path.resolve().parent))
    return config_from_dict(doc, source=str(path))


def config_from_dict(doc: dict, source: str = "<dict>") -> PretrainConfig:
    try:
        return PretrainConfig(**doc)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
            lines.append(f"  {loc}: {err['msg']}")
        raise ConfigError(f"invalid pretraining config {source}:\n" + "\n".join(lines)) from None


def _set_dotted(doc: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    cur: Any = doc  # a mapping or a list, as the YAML nests them
    for p in parts[:-1]:
        if isinstance(cur, list):
            cur = cur[int(p)]
        else:
            cur = cur.setdefault(p, {})
    if isinstance(cur, list):
        cur[int(parts[-1])] = value
    else:
        cur[parts[-1]] = value


def describe_options(model: type[StrictModel] = PretrainConfig, prefix: str = "") -> list[str]:
    """One line per option: dotted name, type, default, description (for ``--show-options`` and the docs)."""
    lines = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        sub = ann if isinstance(ann, type) and issubclass(ann, StrictModel) else None
        key = f"{prefix}{name}"
        if sub is not None and sub is not TrunkConfig:
            lines.append(f"{key}:  {field.description or sub.__doc__ or ''}".rstrip())
            lines += describe_options(sub, key + ".")
            continue
        if (
            ann is not None
            and getattr(ann, "__origin__", None) is list
            and ann.__args__
            and isinstance(ann.__args__[0], type)
            and issubclass(ann.__args__[0], StrictModel)
        ):
            lines.append(f"{key}[]:  {field.description or ''}")
            lines += describe_options(ann.__args__[0], key + "[].")
            continue
        default = "required" if field.is_required() else repr(field.get_default(call_default_factory=True))
        ann_name = getattr(ann, "__name__", None)
        tname = (
            str(ann).replace("typing.", "")
            if getattr(ann, "__origin__", None) is not None or ann_name is None
            else ann_name
        )
        lines.append(f"{key} ({tname}, default {default}): {field.description or ''}".rstrip())
    return lines
