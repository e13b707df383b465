"""Bad-input suite, command line: every expected failure of every command is one line
``gfm <command>: error: ...`` naming the file/option, exit status 2, no traceback (``--debug``: the traceback).

Runs the commands in-process on tiny stores made here and on copies of gfm-mini; nothing trains for long.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from gfm_ase.cli import main

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "pretraining" / "configs" / "example-tiny.yaml"
HAS_CUDA = __import__("torch").cuda.is_available()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A valid tiny Cu store, broken .h5 files, models (gfm-mini copy, edited + re-summed architecture)."""
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    from gfm_ase.checkpoint import _canonical
    from gfm_ase.data import StoreWriter
    from gfm_ase.hub import resolve_model

    root = tmp_path_factory.mktemp("badcli")
    good = root / "good.h5"
    with StoreWriter(good, name="cu", level_of_theory="EMT", code="ASE") as w:
        for k in range(6):
            a = bulk("Cu", "fcc", a=3.6 + 0.02 * k, cubic=True)
            a.rattle(0.03, seed=k)
            a.calc = EMT()
            res = dict(energy=a.get_potential_energy(), forces=a.get_forces(), stress=a.get_stress())
            a.calc = SinglePointCalculator(a, **res)
            w.append_atoms(a, id=f"cu-{k}")
    raw = good.read_bytes()
    (root / "truncated.h5").write_bytes(raw[: len(raw) // 2])
    (root / "empty.h5").write_bytes(b"")
    (root / "text.h5").write_text("this is not an HDF5 file\n")
    (root / "a_file").write_text("x")
    (root / "in.xyz").write_text("1\n\nCu 0 0 0\n")
    mini = root / "mini"
    shutil.copytree(resolve_model("gfm-mini"), mini)
    edited = root / "edited"
    shutil.copytree(mini, edited)
    doc = json.loads((edited / "model.json").read_text())
    doc["config"]["trunk"]["options"]["num_features"] = int(doc["config"]["trunk"]["options"]["num_features"]) * 2
    doc["json_sha256"] = hashlib.sha256(_canonical({k: v for k, v in doc.items() if k != "json_sha256"})).hexdigest()
    (edited / "model.json").write_text(json.dumps(doc, indent=1))
    badtrunk = root / "badtrunk"
    shutil.copytree(mini, badtrunk)
    doc = json.loads((badtrunk / "model.json").read_text())
    doc["config"]["trunk"]["name"] = "nosuchtrunk"
    doc["json_sha256"] = hashlib.sha256(_canonical({k: v for k, v in doc.items() if k != "json_sha256"})).hexdigest()
    (badtrunk / "model.json").write_text(json.dumps(doc, indent=1))
    return {p.stem: p for p in root.iterdir()} | {"root": root}


def run_bad(argv, capsys, *fragments):
    """The command fails with exit status 2 and one line naming what is wrong."""
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2, (rc, err)
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("gfm ") and "error:" in lines[0], err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def argparse_bad(argv, capsys, *fragments):
    """argparse refusals (bad choice/type): exit status 2 and the option named."""
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for f in fragments:
        assert f in err, (f, err)


# --- gfm heads ----------------------------------------------------------------------------------------------------
HEADS = {
    "unknown model name": (["heads", "--model", "gfm-nosuch"], ["unknown model 'gfm-nosuch'"]),
    "model folder without model.json": (["heads", "--model", "{root}"], ["model.json"]),
    "model is a file": (["heads", "--model", "{a_file}"], ["a_file"]),
}


@pytest.mark.parametrize("case", list(HEADS))
def test_heads_bad_input(files, capsys, case):
    argv, frags = HEADS[case]
    run_bad([a.format(**files) for a in argv], capsys, *frags)


# --- gfm screen ---------------------------------------------------------------------------------------------------
def _screen(files, *extra):
    return ["screen", files["in"], "-o", files["root"] / "out.h5", "--model", files["mini"], "--head", "emt",
            "--overwrite", "--quiet", *extra]


SCREEN = {
    "unknown --model": (["--model", "gfm-nosuch"], ["unknown model 'gfm-nosuch'"]),
    "edited architecture": (["--model", "{edited}"], ["model.json and model.safetensors disagree"]),
    "unknown trunk in model.json": (["--model", "{badtrunk}"], ["nosuchtrunk"]),
    "unknown head": (["--head", "nohead"], ["unknown head 'nohead'"]),
}
SCREEN_ARGPARSE = {  # refused while parsing: usage line + the option named
    "--max-atoms 0": ["--max-atoms", "0"],
    "--max-atoms -5": ["--max-atoms", "-5"],
    "--max-atoms 1.5": ["--max-atoms", "1.5"],
    "--max-edges 0": ["--max-edges", "0"],
    "--max-memory -1": ["--max-memory", "-1"],
    "--max-memory 0": ["--max-memory", "0"],
    "--max-memory nan": ["--max-memory", "nan"],
    "--workers 0": ["--workers", "0"],
    "--chunk-rows 0": ["--chunk-rows", "0"],
    "--chunk-seconds -1": ["--chunk-seconds", "-1"],
    "--shortlist -1": ["--shortlist", "-1"],
    "--wait-timeout -1": ["--wait-timeout", "-1"],
    "--dtype float16": ["--dtype", "float16"],
    "--properties dipole": ["--properties", "dipole"],
    "--oversize drop": ["--oversize", "drop"],
}


@pytest.mark.parametrize("case", list(SCREEN_ARGPARSE))
def test_screen_option_refused_by_the_parser(files, capsys, case):
    option, value = SCREEN_ARGPARSE[case]
    argparse_bad(_screen(files, option, value), capsys, option)
if not HAS_CUDA:
    SCREEN["--device cuda without CUDA"] = (["--device", "cuda"], ["CUDA is not available"])
SCREEN["--device nonsense"] = (["--device", "gpu0"], ["unknown device 'gpu0'"])


@pytest.mark.parametrize("case", list(SCREEN))
def test_screen_bad_option(files, capsys, case):
    extra, frags = SCREEN[case]
    run_bad(_screen(files, *[a.format(**files) for a in extra]), capsys, *frags)


@pytest.mark.parametrize("name,frag", [("missing.xyz", "does not exist"), ("text.h5", "text.h5"),
                                        ("truncated.h5", "truncated.h5")])
def test_screen_bad_inputs(files, capsys, name, frag):
    argv = _screen(files)
    argv[1] = files["root"] / name
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if rc == 0:  # an unreadable input file can also be an error row (the run goes on): then it must say so
        from gfm_ase.screening.output import read_results

        res = read_results(files["root"] / "out.h5")
        assert all(res["error"]) and frag in " ".join(res["error"])
    else:
        assert rc == 2 and frag in err


@pytest.mark.parametrize("value", ["-1", "2", "nan", "x"])
def test_screen_bad_min_distance_factor(files, capsys, value):
    argparse_bad(_screen(files, "--min-distance-factor", value), capsys, "--min-distance-factor")


def test_screen_output_with_unknown_suffix(files, capsys):
    argv = _screen(files)
    argv[3] = files["root"] / "out.txt"
    run_bad(argv, capsys, "out.txt")


def test_screen_overlapping_rows_are_errors_exit_0(files, capsys, tmp_path):
    from ase import Atoms
    from ase.build import bulk
    from ase.io import write

    from gfm_ase.screening.output import read_results

    src = tmp_path / "mixed.xyz"
    write(src, [bulk("Cu", "fcc", a=3.6), Atoms("Cu2", positions=[[0, 0, 0], [0.4, 0, 0]], cell=[6] * 3, pbc=True),
                Atoms("Cu", cell=[0.5] * 3, pbc=True)])
    out = tmp_path / "o.h5"
    assert main(["screen", str(src), "-o", str(out), "--model", str(files["mini"]), "--head", "emt", "--quiet"]) == 0
    assert "2 structures could not be evaluated" in capsys.readouterr().out
    res = read_results(out)
    errors = dict(zip(res["id"], res["error"]))
    assert errors["mixed.xyz:0"] == ""
    assert "overlapping atoms" in errors["mixed.xyz:1"] and "cell too small" in errors["mixed.xyz:2"]


@pytest.mark.parametrize("argv", [["heads", "--model", "gfm-nosuch", "--debug"],
                                  ["--debug", "heads", "--model", "gfm-nosuch"]])
def test_debug_adds_the_traceback(files, capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" in err and err.strip().splitlines()[-1].startswith("gfm heads: error:")


# --- gfm validate errors ------------------------------------------------------------------------------------------
def _validate(files, *extra):
    return ["validate", "errors", "--data", files["good"], "--model", files["mini"], "--head", "emt",
            "-o", files["root"] / "val", *extra]


VALIDATE = {
    "non-HDF5 store": (["--data", "{text}"], ["text.h5"]),
    "truncated store": (["--data", "{truncated}"], ["truncated.h5"]),
    "empty store": (["--data", "{empty}"], ["empty.h5"]),
    "missing data": (["--data", "{root}/nope.h5"], ["nope.h5"]),
    "unknown --model": (["--model", "gfm-nosuch"], ["unknown model 'gfm-nosuch'"]),
    "edited architecture": (["--model", "{edited}"], ["disagree"]),
    "unknown head": (["--head", "nohead"], ["unknown head 'nohead'"]),
    "--device nonsense": (["--device", "gpu0"], ["unknown device"]),
}
if not HAS_CUDA:
    VALIDATE["--device cuda without CUDA"] = (["--device", "cuda"], ["CUDA is not available"])


@pytest.mark.parametrize("case", list(VALIDATE))
def test_validate_errors_bad_input(files, capsys, case):
    extra, frags = VALIDATE[case]
    run_bad(_validate(files, *[a.format(**files) for a in extra]), capsys, *frags)


VALIDATE_ARGPARSE = {
    "errors --split everything": ("errors", ["--split", "everything"]),
    "errors --max-structures 0": ("errors", ["--max-structures", "0"]),
    "errors --align magic": ("errors", ["--align", "magic"]),
    "eos --points 0": ("eos", ["--points", "0"]),
    "eos --reference dft": ("eos", ["--reference", "dft"]),
    "relax --fmax -0.1": ("relax", ["--reference", "x.cif", "--fmax", "-0.1"]),
    "relax --steps 0": ("relax", ["--reference", "x.cif", "--steps", "0"]),
    "relax --rattle -1": ("relax", ["--reference", "x.cif", "--rattle", "-1"]),
    "md --temperature -300": ("md", ["--bulk", "Cu", "--temperature", "-300"]),
    "md --timestep 0": ("md", ["--bulk", "Cu", "--timestep", "0"]),
    "md --nve-ps nan": ("md", ["--bulk", "Cu", "--nve-ps", "nan"]),
    "md --repeat 0 1 1": ("md", ["--bulk", "Cu", "--repeat", "0", "1", "1"]),
    "phonons --band-points 0": ("phonons", ["--reference", "x", "--band-points", "0"]),
    "phonons --mesh -5": ("phonons", ["--reference", "x", "--mesh", "-5"]),
    "validate --dtype bfloat16": ("eos", ["--dtype", "bfloat16"]),
}


@pytest.mark.parametrize("case", list(VALIDATE_ARGPARSE))
def test_validate_option_refused_by_the_parser(files, capsys, case):
    suite, extra = VALIDATE_ARGPARSE[case]
    argparse_bad(["validate", suite, "--calculator", "emt", "-o", files["root"] / "v", *extra], capsys, extra[-2]
                 if extra[-2].startswith("--") else extra[-4])


# --- gfm pretrain -------------------------------------------------------------------------------------------------
def _pretrain(files, outdir=None, **sets):
    argv = ["pretrain", EXAMPLE, "-o", outdir or files["root"] / "pre"]
    paths = {f"datasets.{i}.path": str(files["good"]) for i in range(4)}
    for k, v in {**paths, "logging.progress": False, "sampling.epochs": 1, "sampling.steps_per_epoch": 1,
                 **sets}.items():
        argv += ["--set", f"{k}={json.dumps(v)}"]
    return argv


PRETRAIN = {
    "unknown trunk name": ({"model.trunk.name": "nosuchtrunk"}, ["nosuchtrunk"]),
    "negative cutoff": ({"model.trunk.options.cutoff": -4.0}, ["cutoff"]),
    "zero features": ({"model.trunk.options.num_features": 0}, ["num_features"]),
    "unknown trunk option": ({"model.trunk.options.cutof": 4.0}, ["cutof"]),
    "unknown top-level option": ({"sampling.epocs": 2}, ["epocs"]),
    "negative lr": ({"optim.lr": -1.0}, ["lr"]),
    "zero batch size": ({"sampling.batch_size": 0}, ["batch_size"]),
    "dataset store is not HDF5": ({"datasets.0.path": "{text}"}, ["text.h5"]),
    "dataset store truncated": ({"datasets.0.path": "{truncated}"}, ["truncated.h5"]),
    "dataset store empty": ({"datasets.0.path": "{empty}"}, ["empty.h5"]),
    "dataset store missing": ({"datasets.0.path": "{root}/nope.h5"}, ["nope.h5"]),
    "unknown precision": ({"precision": "float16"}, ["precision"]),
}
if not HAS_CUDA:
    PRETRAIN["device cuda without CUDA"] = ({"device": "cuda"}, ["CUDA"])


@pytest.mark.parametrize("case", list(PRETRAIN))
def test_pretrain_bad_input(files, capsys, case):
    sets, frags = PRETRAIN[case]
    sets = {k: (v.format(**files) if isinstance(v, str) else v) for k, v in sets.items()}
    run_bad(_pretrain(files, files["root"] / f"pre-{abs(hash(case))}", **sets), capsys, *frags)


def test_pretrain_outdir_is_a_file(files, capsys):
    run_bad(_pretrain(files, files["a_file"]), capsys, "a_file")


def test_pretrain_missing_config(files, capsys):
    run_bad(["pretrain", files["root"] / "nope.yaml", "-o", files["root"] / "p"], capsys, "nope.yaml")


def test_pretrain_set_without_value(files, capsys):
    run_bad(["pretrain", EXAMPLE, "-o", files["root"] / "p", "--set", "seed"], capsys, "--set")


# --- gfm finetune -------------------------------------------------------------------------------------------------
def _finetune(files, *extra, outdir=None):
    return ["finetune", "--from", files["mini"], "--train", files["good"], "--head", "cu_new",
            "--strategy", "frozen", "--steps", "1", "-o", outdir or files["root"] / "ft-never", *extra]


FINETUNE = {
    "train store is not HDF5": (["--train", "{text}"], ["text.h5"]),
    "train store truncated": (["--train", "{truncated}"], ["truncated.h5"]),
    "train store empty": (["--train", "{empty}"], ["empty.h5"]),
    "val store truncated": (["--val", "{truncated}"], ["truncated.h5"]),
    "unknown --from": (["--from", "gfm-nosuch"], ["unknown model 'gfm-nosuch'"]),
    "edited architecture": (["--from", "{edited}"], ["disagree"]),
    "--n-train 0": (["--n-train", "0"], ["n_train"]),
    "--n-train -3": (["--n-train", "-3"], ["n_train"]),
    "--steps 0": (["--steps", "0"], ["steps"]),
    "--batch-size 0": (["--batch-size", "0"], ["batch_size"]),
    "--lr -1": (["--lr", "-1"], ["lr"]),
    "--device nonsense": (["--device", "gpu0"], ["device"]),
    "--set unknown key": (["--set", "stepz=3"], ["stepz"]),
}
if not HAS_CUDA:
    FINETUNE["--device cuda without CUDA"] = (["--device", "cuda"], ["CUDA is not available"])


@pytest.mark.parametrize("case", list(FINETUNE))
def test_finetune_bad_input(files, capsys, case):
    extra, frags = FINETUNE[case]
    run_bad(_finetune(files, *[a.format(**files) for a in extra]), capsys, *frags)


def test_finetune_missing_train(files, capsys):
    run_bad(["finetune", "--from", files["mini"], "-o", files["root"] / "x"], capsys, "--train")


@pytest.mark.parametrize("kwargs", [{"max_atoms": 0}, {"max_atoms": -1}, {"max_atoms": 2.5}, {"max_edges": 0},
                                    {"max_memory": -1}, {"max_memory": 0.0}, {"max_memory": float("nan")},
                                    {"max_atoms": True}])
def test_screener_api_refuses_budget_options(kwargs):
    from conftest import make_tiny_model

    from gfm_ase.screening.engine import Screener

    with pytest.raises(ValueError, match=next(iter(kwargs)) + " must be a positive"):
        Screener(make_tiny_model(), "a", device="cpu", **kwargs)


# --- gfm validate: other suites, bad files and values -------------------------------------------------------------
VALIDATE_SUITES = {
    "eos unknown element": (["eos", "--elements", "Xx"], ["Xx"]),
    "md unknown bulk": (["md", "--bulk", "Unobtainium", "--nve-ps", "0.001", "--nvt-ps", "0"], ["Unobtainium"]),
    "relax missing reference": (["relax", "--reference", "{root}/nope.cif"], ["nope.cif"]),
    "phonons empty reference folder": (["phonons", "--reference", "{root}"], [str("{root}")]),
    "report missing yaml": (["report", "{root}/nope.yaml"], ["nope.yaml"]),
    "report yaml not a mapping": (["report", "{a_file}"], ["a_file"]),
}


@pytest.mark.parametrize("case", list(VALIDATE_SUITES))
def test_validate_suite_bad_input(files, capsys, case):
    argv, frags = VALIDATE_SUITES[case]
    argv = [a.format(**files) for a in argv]
    run_bad(["validate", argv[0], "--calculator", "emt", "-o", files["root"] / "vs", *argv[1:]], capsys,
            *[f.format(**files) for f in frags])


# --- gfm pretrain --resume ----------------------------------------------------------------------------------------
def test_pretrain_resume_without_a_checkpoint(files, capsys, tmp_path):
    run_bad(_pretrain(files, tmp_path / "fresh") + ["--resume"], capsys, "checkpoint")


# --- gfm finetune-zoo ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,text,frag", [("missing.yaml", None, "missing.yaml"),
                                            ("bad.yaml", "tasks: [\n", "bad.yaml"),
                                            ("empty.yaml", "", "empty.yaml")])
def test_finetune_zoo_bad_task_file(files, capsys, tmp_path, name, text, frag):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    run_bad(["finetune-zoo", path, "--from", files["mini"], "-o", tmp_path / "zoo"], capsys, frag)
