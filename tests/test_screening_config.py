"""The typed screening config (gfm_ase/screening/config.py): validated once, one line with the dotted path for
every problem, before a model is loaded or an output touched; the CLI, ``screen()`` and ``Screener`` share it."""
from __future__ import annotations

import pytest
from ase.io import write
from conftest import make_tiny_model

from gfm_ase.screening import Screener, screen
from gfm_ase.screening.benchset import benchmark_structures
from gfm_ase.screening.config import ScreenConfig, ScreenConfigError, ScreenerConfig
from gfm_ase.screening.output import parts_dir


@pytest.fixture(scope="module")
def model():
    return make_tiny_model(seed=2, heads=("a", "b"))


@pytest.mark.parametrize("options, path", [
    ({"max_atom": 10}, "max_atom: unknown option"),
    ({"max_atoms": 0}, "max_atoms: max_atoms must be a positive integer"),
    ({"dtype": "float16"}, "dtype: dtype must be one of"),
    ({"properties": ["dipole"]}, "properties: unknown properties ['dipole']"),
    ({"properties": "forces"}, "properties: properties must be a list"),
    ({"oversize": "skip"}, "oversize: oversize must be one of"),
    ({"min_distance_factor": 2.0}, "min_distance_factor: min_distance_factor must be a number in [0, 1]"),
    ({"prefetch": 0}, "prefetch: Input should be greater than or equal to 1"),
    ({"workers": 0}, "workers: Input should be greater than or equal to 1"),
    ({"dispersion": "d4"}, "dispersion: unknown dispersion 'd4'"),
])
def test_engine_options_are_one_line_before_the_model_is_resolved(options, path):
    with pytest.raises(ScreenConfigError) as info:
        Screener("no-such-model", "a", **options)  # the model name would fail later: the option fails first
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("invalid screening options: ") and path in msg, msg


@pytest.mark.parametrize("options, path", [
    ({"shortlst": 3}, "shortlst: unknown option"),
    ({"chunk_rows": 0}, "chunk_rows: Input should be greater than or equal to 1"),
    ({"hull_energies": "dft"}, "hull_energies: hull energies must be one of"),
    ({"max_edges": -1}, "screener.max_edges: max_edges must be a positive integer"),
    ({"wait_timeout": 0}, "wait_timeout: Input should be greater than 0"),
])
def test_run_options_fail_before_the_output_is_touched(tmp_path, options, path):
    write(tmp_path / "in.xyz", benchmark_structures(2, seed=0), format="extxyz")
    out = tmp_path / "out.h5"
    with pytest.raises(ScreenConfigError) as info:
        screen([tmp_path / "in.xyz"], out, model="no-such-model", log=None, **options)
    assert "\n" not in str(info.value) and path in str(info.value), str(info.value)
    assert not out.exists() and not parts_dir(out).exists()


def test_flat_options_are_sorted_into_the_engine_and_the_run():
    cfg = ScreenConfig.from_options(dtype="float64", properties=["stress"], max_atoms=64, shortlist=3,
                                    hull_references=["a.xyz"], dispersion="D3BJ")
    assert cfg.screener.dtype == "float64" and cfg.screener.max_atoms == 64
    assert cfg.screener.properties == ("energy", "stress")  # energy first, always
    assert cfg.screener.dispersion == "d3bj"
    assert cfg.shortlist == 3 and cfg.hull_references == ("a.xyz",)
    # options on top of a config keep the config's other values
    more = ScreenConfig.from_options(cfg, max_atoms=32, chunk_rows=10)
    assert (more.screener.max_atoms, more.screener.dtype, more.shortlist, more.chunk_rows) == (32, "float64", 3, 10)
    with pytest.raises(Exception):  # frozen: a config is what was validated
        cfg.screener.max_atoms = 0  # type: ignore[misc]
    assert set(ScreenConfig.option_names()) >= {"dtype", "workers", "dispersion", "shortlist", "overwrite"}
    assert "screener" not in ScreenConfig.option_names()


def test_screener_uses_the_config_it_is_given(model):
    cfg = ScreenerConfig(dtype="float64", properties=["forces"], max_atoms=50, oversize="refuse", workers=2,
                         prefetch=3, uncertainty=False, min_distance_factor=0.0)
    sc = Screener(model, "b", config=cfg)
    assert sc.config is cfg  # validated once, not rebuilt
    assert (sc.precision, sc.properties, sc.oversize, sc.workers, sc.prefetch) == (
        "float64", ("energy", "forces"), "refuse", 2, 3)
    assert sc.budget.max_atoms == 50 and not sc.sanity.enabled and sc.spread is None
    # the same options as keywords give the same engine (and the same resume signature)
    kw = Screener(model, "b", dtype="float64", properties=["forces"], max_atoms=50, oversize="refuse", workers=2,
                  prefetch=3, uncertainty=False, min_distance_factor=0.0)
    assert kw.signature() == sc.signature() and kw.config == cfg
    # keywords on top of a config
    assert Screener(model, "b", config=cfg, max_atoms=20).budget.max_atoms == 20


def test_screen_with_a_screener_refuses_engine_options(model, tmp_path):
    sc = Screener(model, "a", dtype="float64")
    with pytest.raises(ScreenConfigError, match=r"engine options \['dtype'\] given with a screener"):
        screen([tmp_path / "in.xyz"], tmp_path / "o.h5", screener=sc, dtype="float32", log=None)


def test_every_cli_option_reaches_the_config():
    """A ``gfm screen`` option that is neither a config field nor listed as a non-option would be dropped silently."""
    from gfm_ase.cli import build_parser
    from gfm_ase.cli.screen import NOT_OPTIONS, config_from_args

    argv = ["screen", "x.xyz", "-o", "o.h5", "--dtype", "float64", "--properties", "forces", "stress",
            "--max-atoms", "77", "--max-edges", "999", "--max-memory", "1.5", "--oversize", "refuse",
            "--allow-unknown-elements", "--min-distance-factor", "0.25", "--workers", "3", "--compile",
            "--no-uncertainty", "--dispersion", "d3zero", "--hull-references", "r.xyz", "--hull-energies", "stored",
            "--shortlist", "5", "--shortlist-by", "energy", "--chunk-rows", "9", "--chunk-seconds", "2.5",
            "--rank", "1", "--world-size", "2", "--wait-timeout", "30", "--overwrite", "--device", "cpu"]
    args = build_parser().parse_args(argv)
    unmapped = set(vars(args)) - set(ScreenConfig.option_names()) - set(NOT_OPTIONS)
    assert not unmapped, f"gfm screen options that do not reach ScreenConfig: {sorted(unmapped)}"
    cfg = config_from_args(args)
    assert cfg == ScreenConfig(
        screener=ScreenerConfig(device="cpu", dtype="float64", properties=["forces", "stress"], max_atoms=77,
                                max_edges=999, max_memory=1.5, oversize="refuse", allow_unknown_elements=True,
                                min_distance_factor=0.25, workers=3, compile=True, uncertainty=False,
                                dispersion="d3zero"),
        hull_references=["r.xyz"], hull_energies="stored", shortlist=5, shortlist_by="energy", chunk_rows=9,
        chunk_seconds=2.5, rank=1, world_size=2, wait_timeout=30, overwrite=True)
    # options not given: the config's defaults (the sanity factor included)
    assert config_from_args(build_parser().parse_args(["screen", "x.xyz", "-o", "o.h5"])) == ScreenConfig()
