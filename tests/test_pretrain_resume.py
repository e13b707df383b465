"""Kill-and-resume: a CPU single-process run killed with SIGKILL and resumed with --resume reproduces the losses
and the final weights of an uninterrupted run exactly. Checkpoints hold no pickle and are verified on load."""
from __future__ import annotations

import json
import signal
import subprocess
import time

import numpy as np
import pytest
from safetensors.torch import load_file

from pretrain_helpers import EXAMPLE, cli, make_data, overrides_for, set_args, subprocess_env, tiny_config
from gfm_ase.pretraining.logger import read_csv

# a second loss stage from step 60: the resumed part of the run crosses it (the kill comes at step 10-59)
STEPS = dict(sampling__steps_per_epoch=40, sampling__epochs=2, logging__every_steps=1, checkpoint__every_steps=10,
             validation__every_steps=40, validation__max_structures=4,
             loss__stages=[{"start": 0.75, "energy_weight": 4.0}])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("tiny"), scale=0.25)


def _losses(out):
    return [(int(r["step"]), r["loss"]) for r in read_csv(out / "logs" / "train.csv")]


def test_sigkill_then_resume_gives_the_losses_of_an_uninterrupted_run(data_dir, tmp_path):
    from gfm_ase.pretraining.trainer import Trainer

    ref = tmp_path / "ref"
    Trainer(tiny_config(data_dir, **STEPS), ref).fit()

    run = tmp_path / "run"
    args = cli("pretrain", str(EXAMPLE), "-o", str(run), *set_args(overrides_for(data_dir, **STEPS)))
    env = subprocess_env()
    proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    latest = run / "checkpoints" / "latest"
    deadline = time.time() + 240
    while not latest.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it could be killed:\n{out.decode()[-2000:]}"
    assert not (run / "final").exists()
    killed_at = int(latest.read_text().strip().split("_")[1])
    assert 10 <= killed_at < 60

    res = subprocess.run(args + ["--resume"], stdin=subprocess.DEVNULL, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert f"resuming at step {killed_at}" in res.stdout

    a, b = _losses(ref), _losses(run)
    assert [s for s, _ in b] == list(range(1, 81))
    assert b == a  # exact: the CSV stores the float's repr
    wa = load_file(str(ref / "final" / "model.safetensors"))
    wb = load_file(str(run / "final" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(np.array_equal(wa[k].numpy(), wb[k].numpy()) for k in wa)


def test_checkpoint_is_pickle_free_complete_and_verified(data_dir, tmp_path):
    from gfm_ase.checkpoint import CheckpointError
    from gfm_ase.pretraining.state import latest_checkpoint, read_checkpoint
    from gfm_ase.pretraining.trainer import Trainer, TrainingError

    cfg = tiny_config(data_dir, sampling__steps_per_epoch=6, sampling__epochs=1, checkpoint__every_steps=3,
                      checkpoint__keep=1, validation__max_structures=2)
    with pytest.raises(TrainingError, match="no checkpoint"):
        Trainer(cfg, tmp_path / "nothing", resume=True)
    tr = Trainer(cfg, tmp_path)
    tr.fit()
    ck = latest_checkpoint(tmp_path)
    assert ck.name == "step_00000006"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step_00000006"]  # keep=1
    assert sorted(p.name for p in ck.iterdir()) == ["model.json", "model.safetensors", "train_state.json",
                                                    "train_state.safetensors"]
    for p in ck.iterdir():  # no pickle anywhere: JSON text, or safetensors (u64 header length + JSON header + raw)
        raw = p.read_bytes()
        if p.suffix == ".json":
            json.loads(raw)
        else:
            n = int.from_bytes(raw[:8], "little")
            header = json.loads(raw[8:8 + n])
            assert all(v["dtype"] in ("F32", "F64", "U8", "I64") for k, v in header.items() if k != "__metadata__")
    weights, tensors, meta = read_checkpoint(ck)
    names = list(weights)
    for n in names:
        assert f"optim.exp_avg.{n}" in tensors and f"optim.exp_avg_sq.{n}" in tensors and f"ema.{n}" in tensors
    assert "rng.torch.0" in tensors
    assert meta["step"] == 6 and meta["optimizer"]["adam_step"] == 6 and meta["sampler"]["steps_drawn"] == 6
    assert meta["ema"]["num_updates"] == 6
    assert {n.split(".")[1] for n in names if n.startswith("heads.")} == {"emt", "lj"}

    # tampering is detected
    doc = json.loads((ck / "train_state.json").read_text())
    doc["step"] = 5
    (ck / "train_state.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="checksum"):
        read_checkpoint(ck)

    # a resumed run must use the same settings
    cfg2 = tiny_config(data_dir, sampling__steps_per_epoch=6, sampling__epochs=1, optim__lr=0.1)
    (ck / "train_state.json").write_text(json.dumps({**doc, "step": 6}))
    with pytest.raises((TrainingError, CheckpointError)):
        Trainer(cfg2, tmp_path, resume=True)


def test_a_second_launch_on_a_training_folder_is_refused_while_the_first_trains(data_dir, tmp_path, capsys):
    """One run per output directory: while a run holds OUTDIR/train.lock (as a training process does in fit()),
    another launch on the same folder trains and writes nothing and reports one line naming the holder."""
    import os

    from gfm_ase.cli import main
    from gfm_ase.fileio import exclusive_lock
    from gfm_ase.pretraining.errors import TrainingError
    from gfm_ase.pretraining.trainer import Trainer

    out = tmp_path / "run"
    short = dict(sampling__steps_per_epoch=4, sampling__epochs=1, checkpoint__every_steps=2)
    with exclusive_lock(out / "train.lock", "training run"):
        with pytest.raises(TrainingError, match=rf"in use by another training run \(pid {os.getpid()}"):
            Trainer(tiny_config(data_dir, **short), out).fit()
        rc = main(["pretrain", str(EXAMPLE), "-o", str(out), *set_args(overrides_for(data_dir, **short))])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and "in use by another training run" in err[0]
        assert sorted(p.name for p in out.iterdir()) == ["train.lock"]  # nothing trained or written
    Trainer(tiny_config(data_dir, **short), out).fit()  # the lock released: the run trains
    assert (out / "final" / "model.json").is_file()
