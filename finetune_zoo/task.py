"""A zoo task (``finetune_zoo/tasks/*.yaml``): data source, split, head, strategy, metric and budget.

Store paths are relative to ``--stores`` (default ``work_data/stores``, made by
``pretraining/corpus/ingest_shared.py``) unless absolute; ``${VAR}`` and ``~`` are expanded. A task whose store is
missing but that has a ``prepare`` step (a generator or a conversion of extxyz shards) builds it into
``--work`` (default ``work_data/zoo``) first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import yaml
from pydantic import Field, ValidationError, field_validator

from gfm_ase.config import StrictModel
from gfm_ase.pretraining.config import SplitSpec

if TYPE_CHECKING:
    from gfm_ase.data import Store


class PrepareSpec(StrictModel):
    """How to build the task's store when it is missing."""

    kind: Literal["generate_xtb", "generate_xtb_crystals", "convert"] = Field(
        description="generate_xtb(_crystals): gfm_ase.finetune_zoo.generate_xtb; convert: gfm_ase.data converters"
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="generator options (method, seed, per_molecule / per_prototype)"
    )
    sources: list[str] = Field(default_factory=list, description="convert: files/globs (env vars expanded)")
    format: str = Field(default="auto", description="convert: converter format")
    level_of_theory: str = ""
    code: str = ""
    source: str = ""
    license: str = ""


class DataSpec(StrictModel):
    store: str = Field(description="store file (or shard folder), relative to --stores or --work")
    groups: list[str] | None = Field(
        default=None, description="use only structures whose group starts with one of these"
    )
    split: SplitSpec = Field(default_factory=SplitSpec, description="train/val/test split of the selection")
    test_store: str | None = Field(default=None, description="a separate test store (then the split's test share is 0)")
    prepare: PrepareSpec | None = None


class TaskSpec(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    title: str = Field(description="one-line description for the table")
    source: str = Field(description="where the data comes from (dataset, reference, license)")
    why_held_out: str = Field(description="why this data is outside the pretrained model's corpus")
    data: DataSpec
    head: str = Field(pattern=r"^[A-Za-z0-9_\-]+$", description="head name (existing head for continue)")
    level_of_theory: str = "unknown"
    code: str = "unknown"
    strategy: Literal["frozen", "full", "continue", "replay"]
    metric: Literal["energy_mae_meV_atom", "forces_mae_meV_A"] = Field(
        default="forces_mae_meV_A", description="the headline metric (both are always reported)"
    )
    steps: int = Field(ge=1, description="optimizer steps per run (fine-tuned and from-scratch alike)")
    batch_size: int = Field(default=4, ge=1)
    learning_curve: list[int] = Field(
        default_factory=lambda: [10, 30, 100], description="training-set sizes besides 'all' (sizes >= all are dropped)"
    )
    max_train: int | None = Field(default=None, ge=1, description="cap of 'all' (a seeded subset), for the CPU budget")
    eval_max_structures: int | None = Field(
        default=100, ge=1, description="val/test structures evaluated (seeded subset)"
    )
    options: dict[str, Any] = Field(default_factory=dict, description="further FinetuneConfig options")

    @field_validator("learning_curve")
    @classmethod
    def _sizes(cls, v: list[int]) -> list[int]:
        if any(n < 1 for n in v):
            raise ValueError(f"learning-curve sizes must be >= 1, got {v}")
        return sorted(set(v))


def load_task(path: str | Path) -> TaskSpec:
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        raise ValueError(f"invalid task file {path}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"invalid task file {path}: expected a mapping of task options, got {type(doc).__name__}")
    try:
        return TaskSpec(**doc)
    except (TypeError, ValidationError) as exc:
        raise ValueError(f"invalid task file {path}: {exc}") from None


def resolve_store(spec: str, stores: Path, work: Path) -> Path:
    p = Path(os.path.expanduser(os.path.expandvars(spec)))
    if p.is_absolute():
        return p
    for base in (stores, work):
        if (base / p).exists():
            return base / p
    return stores / p


def selection_splits(store: Store, data: DataSpec) -> dict[str, np.ndarray]:
    """Store indices of train/val/test for the task (groups filter first, then the split)."""
    from gfm_ase.data.splits import split_groups, split_indices

    idx = np.arange(len(store), dtype=np.int64)
    groups: np.ndarray | None = None
    if data.groups is not None or data.split.by == "group":
        groups = np.asarray(store.groups, dtype=object)
    if data.groups is not None:
        assert groups is not None  # read above
        keep = np.array([any(str(g).startswith(p) for p in data.groups) for g in groups], dtype=np.bool_)
        idx = idx[keep]
        if len(idx) == 0:
            raise ValueError(f"no structure of {data.store} is in the groups {data.groups}")
    fr = data.split.fractions
    if data.split.by == "group":
        assert groups is not None  # read above
        parts = split_groups(groups[idx], fr, data.split.seed)
    else:
        parts = split_indices(len(idx), fr, data.split.seed, by="structure")
    return {k: idx[v] for k, v in parts.items()}
