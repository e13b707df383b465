"""The fine-tuning config is composed of pretraining's pieces (head spec, AdamW settings, EMA, loss) with
fine-tuning's defaults, and the pretraining run it becomes takes those pieces as they are."""
from __future__ import annotations

import pytest
from pydantic import ValidationError


def test_pieces_are_pretrainings_with_finetuning_defaults():
    from gfm_ase.finetune_zoo.config import FinetuneConfig
    from gfm_ase.pretraining.config import AdamWSpec, EMASpec, HeadSpec, LossSpec

    cfg = FinetuneConfig(head="water", optim={"lr": 5e-3}, ema={"warmup": False})
    assert isinstance(cfg.head, HeadSpec) and isinstance(cfg.optim, AdamWSpec)
    assert isinstance(cfg.ema, EMASpec) and isinstance(cfg.loss, LossSpec)
    assert cfg.head.name == "water" and cfg.head.hidden is None  # None: as the model's first head
    # a partial section keeps fine-tuning's defaults for the rest (not pretraining's 100 warmup steps / 0.999 decay)
    assert (cfg.optim.lr, cfg.optim.warmup_steps, cfg.optim.min_lr_factor) == (5e-3, 10, 0.05)
    assert (cfg.ema.decay, cfg.ema.warmup) == (0.99, False)
    # the identity of a new head is HeadIdentity's: every field of it is an option here
    assert set(HeadSpec.model_fields) <= set(type(cfg.head).model_fields)


def test_schedule_is_the_pretraining_optimizer_of_the_run():
    from gfm_ase.finetune_zoo.config import FinetuneConfig
    from gfm_ase.pretraining.config import AdamWSpec, OptimSpec

    cfg = FinetuneConfig(head="x", optim={"lr": 4e-3, "min_lr_factor": 0.25, "warmup_steps": 50, "weight_decay": 0.01,
                                          "betas": [0.8, 0.9], "eps": 1e-7, "grad_clip": 3.0})
    o = cfg.optim.schedule(2e-3, steps=20)  # e.g. the scratch baseline at its own LR
    assert isinstance(o, OptimSpec)
    assert o.lr == 2e-3 and o.min_lr == 2e-3 * 0.25 and o.warmup_steps == 19  # warmup ends before the last step
    for k in set(AdamWSpec.model_fields) - {"lr", "warmup_steps"}:
        assert getattr(o, k) == getattr(cfg.optim, k), k


def test_run_config_takes_the_pieces_unchanged():
    from gfm_ase.finetune_zoo.config import FinetuneConfig
    from gfm_ase.finetune_zoo.finetuning import _run_config
    from gfm_ase.config import TrunkConfig
    from gfm_ase.pretraining.data import DatasetSplits

    cfg = FinetuneConfig(head="h", steps=7, ema={"enabled": False}, loss={"stress_weight": 2.0, "kind": "mse"},
                         optim={"lr": 1e-3, "trunk_lr_factor": 0.5})
    ds = DatasetSplits(name="d", head="h", train=[], val=[], test=[])
    run = _run_config(cfg, "m", TrunkConfig(), [ds], [1.0], [16], cfg.optim.lr)
    assert run.loss == cfg.loss and run.ema == cfg.ema
    assert run.optim == cfg.optim.schedule(cfg.optim.lr, 7)
    assert [h.hidden for h in run.heads] == [[16]] and run.total_steps == 7


@pytest.mark.parametrize("doc, where", [
    ({"head": "x", "lr": 1e-3}, "lr"),  # the optimizer's options live under optim
    ({"head": "x", "optim": {"min_lr": 1e-5}}, "optim.min_lr"),  # fine-tuning states the end relative to lr
    ({"head": {"name": "x", "hidden": []}}, "head.hidden"),
    ({"head": "bad name"}, "head.name"),
    ({"head": "x", "ema": {"decay": 1.0}}, "ema.decay"),
])
def test_wrong_options_name_their_dotted_path(doc, where):
    from gfm_ase.finetune_zoo.config import FinetuneConfig

    with pytest.raises(ValidationError) as err:
        FinetuneConfig(**doc)
    locs = {".".join(str(x) for x in e["loc"]) for e in err.value.errors()}
    assert where in locs, locs
