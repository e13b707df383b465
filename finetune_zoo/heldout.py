"""Where the pretraining data of a model's heads is: for replay (their training splits) and for the forgetting
report (their held-out test splits).

For each head, the first source that describes it wins:

1. ``replay_config``: a pretraining YAML given explicitly (``--replay-config``); paths relative to that file.
2. The pretraining config recorded in the model (``model.json`` -> ``extra.training.config``, written by
   ``gfm pretrain``), which holds every dataset's store path, split (fractions, seed, by) and ``max_structures``.
3. The head's own metadata (``datasets`` entries): store path + split spec of a pretrained head (``max_structures``
   is recovered from the recorded split sizes), or the explicit validation/test indices that ``gfm finetune``
   records for the heads it creates.

A recorded path that does not exist is looked up by its file name in each ``data_dirs`` folder (data moved to
another machine; the paths a saved model records are relative, e.g. ``work_data/stores/emt.h5``, see
:func:`gfm_ase.checkpoint.portable_document`, so outside the directory the model was trained in the data is found
through ``data_dirs``). A store is accepted only if its number of structures equals the number recorded in the head
metadata, so a different file with the same name is refused instead of silently giving wrong splits.
Heads whose data cannot be found are reported as unavailable, with the reason; nothing is skipped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from gfm_ase.config import HeadConfig, HeadSpec
from gfm_ase.finetune_zoo.data import cached_graphs
from gfm_ase.pretraining.config import ConfigError, DatasetSpec, PretrainConfig, config_from_dict, load_config
from gfm_ase.pretraining.data import DatasetSplits, open_datasets

DataDirs = Sequence[str | Path]  # folders searched for a store by its file name


@dataclass
class HeadData:
    """The pretraining datasets of one head (exact splits), or why they are unavailable."""

    head: str
    datasets: list[DatasetSplits] = field(default_factory=list)
    source: str = ""
    reason: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.datasets) and not self.reason


def _locate(path: Path, data_dirs: DataDirs) -> Path | None:
    if path.exists():
        return path
    for d in data_dirs:
        cand = Path(d) / path.name
        if cand.exists():
            return cand
    return None


def _where(data_dirs: DataDirs) -> str:
    """The data folders as searched (absolute), for messages."""
    return ", ".join(str(Path(d).resolve()) for d in data_dirs)


def _recorded(head_cfg: HeadConfig, name: str) -> dict[str, Any] | None:
    for d in head_cfg.datasets:
        if d.get("name") == name:
            return d
    return None


def _from_config(
    cfg: PretrainConfig,
    head_cfg: HeadConfig,
    data_dirs: DataDirs,
    cutoff: float,
    max_neighbors: int | None,
    source: str,
) -> HeadData | None:
    specs = [d for d in cfg.datasets if d.head == head_cfg.name]
    if not specs:
        return None
    out = HeadData(head_cfg.name, source=source)
    for spec in specs:
        want = cfg.dataset_path(spec)
        found = _locate(want, data_dirs)
        if found is None:
            out.reason = (
                f"store of dataset {spec.name!r} not found at {want}"
                + (f" nor as {want.name} in {_where(data_dirs)}" if data_dirs else "")
                + " (pass --data-dir DIR or --replay-config YAML)"
            )
            return out
        rec = _recorded(head_cfg, spec.name)
        # the datasets this one excludes by (exclude_covered_by) decide which of its structures exist: keep them
        by_name = {d.name: d for d in cfg.datasets}
        covering = []
        for name in spec.exclude_covered_by:
            cov = by_name.get(name)
            cov_path = None if cov is None else _locate(cfg.dataset_path(cov), data_dirs)
            if cov is None or cov_path is None:
                out.reason = (
                    f"dataset {spec.name!r} excludes structures covered by dataset {name!r}, whose store "
                    f"is not found" + (f" in {_where(data_dirs)}" if data_dirs else "")
                )
                return out
            # only its element sets matter: it may train another head, which this sub-config does not hold
            covering.append(
                cov.model_copy(
                    update={
                        "path": str(cov_path.resolve()),
                        "exclude_covered_by": [],
                        "head": head_cfg.name,
                        "label_filter": None,
                    }
                )
            )
        sub = cfg.model_copy(
            update={
                "heads": [cfg.head_of(head_cfg.name)],
                "datasets": [spec.model_copy(update={"path": str(found.resolve())})] + covering,
            }
        )
        try:
            ds = open_datasets(sub, cutoff, max_neighbors)[0]
        except (OSError, ValueError) as exc:
            out.reason = f"dataset {spec.name!r}: {exc}"
            return out
        if rec is not None and rec.get("n_structures") not in (None, ds.provenance["n_structures"]):
            out.reason = (
                f"dataset {spec.name!r}: {found} holds {ds.provenance['n_structures']} structures, the "
                f"model was trained on a store of {rec['n_structures']}: not the same data"
            )
            return out
        if rec is not None and rec.get("n_test") not in (None, len(ds.test)):
            out.reason = (
                f"dataset {spec.name!r}: its test split has {len(ds.test)} structures, the model "
                f"recorded {rec['n_test']}: the split cannot be reproduced"
            )
            return out
        out.datasets.append(ds)
    return out


def _from_metadata(head_cfg: HeadConfig, data_dirs: DataDirs, cutoff: float, max_neighbors: int | None) -> HeadData:
    """Source 3: the head's metadata."""
    from gfm_ase.data import Store

    out = HeadData(head_cfg.name, source="head metadata")
    if not head_cfg.datasets:
        out.reason = "the head records no datasets"
        return out
    for rec in head_cfg.datasets:
        name = rec.get("name", "?")
        if rec.get("role") == "finetune":  # written by gfm finetune: explicit held-out indices
            held = rec.get("test") or rec.get("val")
            if not held or held.get("indices") is None:
                out.reason = f"dataset {name!r}: no held-out indices recorded"
                return out
            found = _locate(Path(held["path"]), data_dirs)
            train_found = _locate(Path(rec["path"]), data_dirs)
            if found is None or train_found is None:
                out.reason = (
                    f"dataset {name!r}: store {held['path']} or {rec['path']} not found"
                    + (f" (nor by file name in {_where(data_dirs)})" if data_dirs else "")
                    + " (pass --data-dir DIR)"
                )
                return out
            store, tr_store = Store(found), Store(train_found)
            if len(tr_store) != rec.get("n_structures", len(tr_store)):
                out.reason = f"dataset {name!r}: {train_found} is not the store the head was trained on"
                return out
            test = cached_graphs(store, cutoff, np.asarray(held["indices"], dtype=np.int64), max_neighbors)
            out.datasets.append(
                DatasetSplits(name=name, head=head_cfg.name, train=[], val=[], test=test, provenance=rec, store=store)
            )
            continue
        if "path" not in rec or "split" not in rec:
            out.reason = f"dataset {name!r}: no store path and split recorded"
            return out
        total = sum(int(rec.get(k, 0)) for k in ("n_train", "n_val", "n_test"))
        n_all = rec.get("n_structures")
        spec = DatasetSpec(
            name=name,
            path=rec["path"],
            head=head_cfg.name,
            split=rec["split"],
            max_structures=total if (n_all and 0 < total < n_all) else None,
        )
        cfg = PretrainConfig(heads=[HeadSpec(name=head_cfg.name)], datasets=[spec])
        got = _from_config(cfg, head_cfg, data_dirs, cutoff, max_neighbors, "head metadata")
        if got is None or not got.ok:
            return got or out
        out.datasets += got.datasets
    return out


def find_head_data(
    model_doc: dict[str, Any],
    heads: list[HeadConfig],
    *,
    replay_config: str | Path | None = None,
    data_dirs: DataDirs = (),
    cutoff: float,
    max_neighbors: int | None = None,
) -> dict[str, HeadData]:
    """{head: HeadData} for the given head configs of a model whose model.json is ``model_doc``."""
    configs: list[tuple[PretrainConfig, str]] = []
    if replay_config is not None:
        try:
            configs.append((load_config(replay_config), f"--replay-config {replay_config}"))
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
    recorded = (model_doc.get("extra") or {}).get("training", {}).get("config")
    if recorded:
        try:
            configs.append(
                (
                    config_from_dict(dict(recorded), source="model.json extra.training.config"),
                    "pretraining config recorded in model.json",
                )
            )
        except ConfigError:
            pass  # an unreadable recorded config: fall back to the head metadata
    out: dict[str, HeadData] = {}
    for h in heads:
        got: HeadData | None = None
        for cfg, source in configs:
            got = _from_config(cfg, h, data_dirs, cutoff, max_neighbors, source)
            if got is not None:
                break
        if got is None:
            got = _from_metadata(h, data_dirs, cutoff, max_neighbors)
        out[h.name] = got
    return out
