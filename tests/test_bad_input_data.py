"""Bad input never passes silently (data side): converter options, unconverted labels, damaged stores.

Each case asserts its outcome class: a clean error whose message names the file/option (exit status 2 on the
command line, one stderr line, no traceback), or a correct result.
"""
from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.stress import full_3x3_to_voigt_6_stress
from ase.units import GPa

from gfm_ase.cli import main
from gfm_ase.data.converters import FORMATS, ConversionError, _reader, convert, iter_records
from gfm_ase.data.converters.base import SkipReport
from gfm_ase.data.converters.options import OPTIONS, validate_options
from gfm_ase.data.store import Store, StoreError, StoreWriter

TRICLINIC = np.array([[4.0, 0.0, 0.0], [1.1, 3.7, 0.0], [0.6, 0.9, 3.4]])


# ----------------------------------------------------------------------------------------------------- helpers
def _cli(capsys, *argv):
    rc = main(["data", *map(str, argv)])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _assert_clean_error(rc, err, *needles):
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def _extxyz(path, n=3, stress=True, info=None):
    frames = []
    for k in range(n):
        a = Atoms("Cu2", positions=[[0, 0, 0], [1.3, 1.2, 1.1 + 0.01 * k]], cell=TRICLINIC, pbc=True)
        a.info.update(info or {})
        a.calc = SinglePointCalculator(a, energy=-1.0 - k, forces=np.full((2, 3), 0.1),
                                       **({"stress": np.arange(1, 7) * 1e-3} if stress else {}))
        frames.append(a)
    import ase.io
    ase.io.write(str(path), frames, format="extxyz")
    return path


def _structure_dict(cell=TRICLINIC):
    return {"@module": "pymatgen.core.structure", "@class": "Structure", "charge": 0,
            "lattice": {"matrix": cell.tolist(), "pbc": [True, True, True]},
            "sites": [{"species": [{"element": "Mo", "occu": 1}], "abc": [0, 0, 0], "xyz": [0.0, 0.0, 0.0]},
                      {"species": [{"element": "Mo", "occu": 1}], "abc": [0.5, 0.5, 0.5],
                       "xyz": (0.5 * cell.sum(0)).tolist()}]}


def _mlearn(path, outputs_list):
    data = [{"structure": _structure_dict(), "num_atoms": 2, "group": "Elastic", "element": "Mo",
             "outputs": {"energy": -20.0 - k, "forces": [[0.1, 0.0, 0.0], [-0.1, 0.0, 0.0]], **o}}
            for k, o in enumerate(outputs_list)]
    path.write_text(json.dumps(data))
    return path


# a tension-positive ASE stress tensor (eV/A^3) with all six components distinct
SIGMA = np.array([[0.011, 0.004, -0.006], [0.004, -0.022, 0.005], [-0.006, 0.005, 0.033]])
KBAR = 0.1 * GPa


def _vasp_kbar(sigma):
    """The same stress as VASP/maml write it: kbar, compression positive, xx yy zz xy yz zx."""
    p = -sigma / KBAR
    return [p[0, 0], p[1, 1], p[2, 2], p[0, 1], p[1, 2], p[2, 0]]


def _mlearn_kbar(sigma):
    """As the mlearn data writes virial_stress: kbar, compression positive, xx yy zz xy xz yz."""
    p = -sigma / KBAR
    return [p[0, 0], p[1, 1], p[2, 2], p[0, 1], p[0, 2], p[1, 2]]


# ----------------------------------------------------------------------------------------------------- options
def test_typo_option_is_an_error_with_suggestion(tmp_path, capsys):
    src = _extxyz(tmp_path / "cu.extxyz")
    rc, out, err = _cli(capsys, "convert", src, "-o", tmp_path / "o.h5", "--no-progress", "--option",
                        "stres_unit=GPa")
    _assert_clean_error(rc, err, "'stres_unit'", "did you mean 'stress_unit'", "stress_sign", "cu.extxyz")
    assert not (tmp_path / "o.h5").exists()


def test_bogus_option_cli_mlearn(tmp_path, capsys):
    src = _mlearn(tmp_path / "m.json", [{}])
    rc, out, err = _cli(capsys, "convert", src, "-o", tmp_path / "o.h5", "--no-progress", "--option", "bogus=1")
    _assert_clean_error(rc, err, "'bogus'", "mlearn-json", "valid options: stress_unit", "m.json")
    assert not (tmp_path / "o.h5").exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_unknown_option_rejected_for_every_format(fmt):
    with pytest.raises(ConversionError) as ei:
        validate_options(fmt, {"bogus": 1}, "src.file")
    msg = str(ei.value)
    assert msg.startswith("src.file: ") and "'bogus'" in msg and fmt in msg
    for opt in OPTIONS[fmt]:
        assert opt.name in msg


@pytest.mark.parametrize("fmt, name, value, needle", [
    ("mlearn-json", "stress_unit", "furlong", "kbar"),
    ("ase", "stress_unit", "gpa", "did you mean 'GPa'"),
    ("ase", "stress_sign", "pressure", "tension, compression"),
    ("ase", "energy_unit", "kcal", "kcal/mol"),
    ("ase", "index", "last", "ASE index"),
    ("ase", "format", "vasp-xm", "did you mean 'vasp-xml'"),
    ("ase", "group", [1, 2], "one text value"),
    ("mptrj", "energy_key", "total_energy", "corrected_total_energy"),
    ("ani-h5", "preset", "spice2", "did you mean 'spice'"),
    ("ani-h5", "length_unit", "bohr", "Bohr"),
    ("phonopy", "supercell", [2, 2], "3 or 9 integers"),
    ("phonopy", "supercell", [2.5, 2, 2], "3 or 9 integers"),
    ("phonopy", "length_unit", -1.0, "positive number"),
    ("deepmd", "type_map", ["Xx", "H"], "element symbols"),
])
def test_invalid_option_value(fmt, name, value, needle):
    with pytest.raises(ConversionError) as ei:
        validate_options(fmt, {name: value}, "src.file")
    msg = str(ei.value)
    assert msg.startswith("src.file: ") and repr(name) in msg and needle in msg, msg


def test_bad_unit_value_cli(tmp_path, capsys):
    src = _mlearn(tmp_path / "m.json", [{"virial_stress": [1, 2, 3, 4, 5, 6]}])
    rc, out, err = _cli(capsys, "convert", src, "-o", tmp_path / "o.h5", "--no-progress", "--option",
                        "stress_unit=furlong")
    _assert_clean_error(rc, err, "'furlong'", "stress_unit", "GPa", "m.json")


@pytest.mark.parametrize("fmt, given, expected", [
    ("phonopy", {"supercell": "2,2,2"}, {"supercell": [2, 2, 2]}),
    ("ase", {"index": -1, "group": 7}, {"index": "-1", "group": "7"}),
    ("deepmd", {"type_map": "O,H"}, {"type_map": ["O", "H"]}),
    ("ani-h5", {"preset": "custom", "coord_key": "xyz", "length_unit": "Bohr", "energy_unit": "Hartree"},
     {"preset": "custom", "coord_key": "xyz", "length_unit": "Bohr", "energy_unit": "Hartree"}),
])
def test_valid_options_are_coerced(fmt, given, expected):
    assert validate_options(fmt, given, "x") == expected


@pytest.mark.parametrize("fmt", FORMATS)
def test_declared_options_match_the_reader(fmt):
    """The spec names exactly the keyword arguments the reader takes, with the same defaults."""
    params = {k: p for k, p in inspect.signature(_reader(fmt)).parameters.items() if k not in ("path", "root")}
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values())  # no option can be swallowed
    assert set(params) == {o.name for o in OPTIONS[fmt]}
    for o in OPTIONS[fmt]:
        assert params[o.name].default == o.default, o.name


def test_options_checked_before_anything_is_read(tmp_path):
    # an unreadable source with a bad option: the option is reported, not the file
    bad = tmp_path / "broken.extxyz"
    bad.write_text("not xyz at all\n")
    with pytest.raises(ConversionError, match="unknown option 'stres_unit'"):
        list(iter_records([bad], "ase", options={"stres_unit": "GPa"}))


def test_formats_listing_shows_options(capsys):
    rc, out, err = _cli(capsys, "formats")
    assert rc == 0
    for fmt in FORMATS:
        assert f"{fmt}:" in out
    assert "stress_unit" in out and "supercell" in out and "preset" in out
    rc, out, err = _cli(capsys, "formats", "nosuch")
    assert rc == 2 and err.startswith("error: unknown format 'nosuch'")


# ------------------------------------------------------------------------------------- maml outputs.stress, labels
def test_maml_outputs_stress_triclinic(tmp_path):
    src = _mlearn(tmp_path / "maml.json", [{"stress": _vasp_kbar(SIGMA)}])
    convert([src], tmp_path / "o.h5")
    rec = Store(tmp_path / "o.h5")[0]
    np.testing.assert_allclose(rec.cell, TRICLINIC)
    # ASE Voigt order xx yy zz yz xz xy, tension positive, eV/A^3
    np.testing.assert_allclose(rec.stress, full_3x3_to_voigt_6_stress(SIGMA), rtol=1e-9, atol=1e-12)


def test_mlearn_virial_stress_preferred_and_same_result(tmp_path):
    src = _mlearn(tmp_path / "m.json", [{"virial_stress": _mlearn_kbar(SIGMA)},
                                        {"virial_stress": _mlearn_kbar(SIGMA), "stress": [0, 0, 0, 0, 0, 0]}])
    convert([src], tmp_path / "o.h5")
    st = Store(tmp_path / "o.h5")
    for i in range(2):
        np.testing.assert_allclose(st[i].stress, full_3x3_to_voigt_6_stress(SIGMA), rtol=1e-9, atol=1e-12)


def test_maml_stress_unit_option(tmp_path):
    gpa = list(np.array(_vasp_kbar(SIGMA)) / 10.0)
    src = _mlearn(tmp_path / "m.json", [{"stress": gpa}])
    convert([src], tmp_path / "o.h5", options={"stress_unit": "GPa"})
    np.testing.assert_allclose(Store(tmp_path / "o.h5")[0].stress, full_3x3_to_voigt_6_stress(SIGMA), rtol=1e-9)


def test_maml_stress_wrong_length_is_an_error(tmp_path):
    src = _mlearn(tmp_path / "m.json", [{"stress": [1, 2, 3]}])
    with pytest.raises(ConversionError, match=r"m.json, record 0: outputs.stress must have 6 components"):
        convert([src], tmp_path / "o.h5")


def test_unconverted_label_is_counted_and_warned(tmp_path):
    src = _mlearn(tmp_path / "m.json", [{"magmom": [1, 1]}, {"magmom": [1, 1], "stress": [0] * 6}, {}])
    report = SkipReport()
    with pytest.warns(UserWarning, match="magmom in 2 structures"):
        recs = list(iter_records([src], report=report))
    assert len(recs) == 3 and report.unconverted == {"magmom": 2}
    assert report.labels["energy"] == 3 and report.labels["stress"] == 1


@pytest.mark.parametrize("case, expected", [
    ("mlearn", "wrote 3 structures to {out}: energy 3, forces 3, stress 2 (formats: mlearn-json)"),
    ("mlearn_extra", "energy 2, forces 2, stress 0 (present in the files but not converted: dipole 2)"),
    ("extxyz", "wrote 3 structures to {out}: energy 3, forces 3, stress 3 (formats: ase)"),
    ("extxyz_virial", "energy 3, forces 3, stress 0 (present in the files but not converted: virial 3)"),
])
def test_summary_counts_labels(tmp_path, capsys, case, expected):
    if case == "mlearn":
        src = _mlearn(tmp_path / "m.json", [{"virial_stress": [1] * 6}, {"stress": [1] * 6}, {}])
    elif case == "mlearn_extra":
        src = _mlearn(tmp_path / "m.json", [{"dipole": [0, 0, 1]}, {"dipole": [0, 0, 1]}])
    elif case == "extxyz":
        src = _extxyz(tmp_path / "cu.extxyz")
    else:
        src = _extxyz(tmp_path / "cu.extxyz", stress=False, info={"virial": np.arange(9.0).reshape(3, 3)})
    out = tmp_path / "o.h5"
    rc, stdout, err = _cli(capsys, "convert", src, "-o", out, "--no-progress")
    assert rc == 0, err
    assert expected.format(out=out) in stdout
    if "not converted" in expected:
        assert err.startswith("warning: labels present in the source files were not converted")
        assert json.loads(json.dumps(Store(out).attrs["unconverted_labels"]))
    else:
        assert err == ""


# ------------------------------------------------------------------------------------------------ damaged stores
@pytest.fixture(scope="module")
def good_store(tmp_path_factory):
    p = tmp_path_factory.mktemp("store") / "good.h5"
    with StoreWriter(p, name="good") as w:
        for k in range(6):
            a = Atoms("Cu4", positions=np.random.default_rng(k).uniform(0, 3, (4, 3)) + [[0, 0, 0], [2, 0, 0],
                                                                                         [0, 2, 0], [0, 0, 2]],
                      cell=np.eye(3) * 5, pbc=True)
            a.calc = SinglePointCalculator(a, energy=-1.0 * k, forces=np.full((4, 3), 0.01 * k))
            w.append_atoms(a, group=f"g{k}")
    return p


def _damage(good, dst, how):
    import h5py

    data = bytearray(good.read_bytes())
    if how == "empty":
        data = b""
    elif how == "text":
        data = b"this is not an HDF5 file\n" * 10
    elif how == "truncated_header":
        data = data[:100]
    elif how == "truncated_half":
        data = data[:len(data) // 2]
    elif how == "truncated_tail":
        data = data[:-16]
    elif how == "bitflip_signature":
        data[1] ^= 0xFF
    elif how == "bitflip_chunk":
        with h5py.File(good, "r") as f:
            info = f["forces"].id.get_chunk_info(0)
        data[info.byte_offset + info.size // 2] ^= 0xFF
    elif how == "not_a_store":
        with h5py.File(dst, "w") as f:
            f["a"] = [1]
        return dst
    dst.write_bytes(bytes(data))
    return dst


DAMAGE = ["empty", "text", "truncated_header", "truncated_half", "truncated_tail", "bitflip_signature",
          "bitflip_chunk", "not_a_store"]


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("cmd", ["info", "check"])
def test_damaged_store_cli(good_store, tmp_path, capsys, how, cmd):
    bad = _damage(good_store, tmp_path / f"{how}.h5", how)
    rc, out, err = _cli(capsys, cmd, bad, *(["--no-progress"] if cmd == "check" else []))
    _assert_clean_error(rc, err, f"error: {bad}: ")


@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_store_api_names_file(good_store, tmp_path, how):
    bad = _damage(good_store, tmp_path / f"{how}.h5", how)
    with pytest.raises(StoreError) as ei:
        st = Store(bad)
        for i in range(len(st)):
            st[i]
    assert str(ei.value).startswith(f"{bad}: ")


def test_damaged_store_debug_shows_traceback(good_store, tmp_path, capsys):
    bad = _damage(good_store, tmp_path / "t.h5", "truncated_half")
    rc, out, err = _cli(capsys, "info", bad, "--debug")
    assert rc == 2 and err.startswith(f"error: {bad}: truncated HDF5 file") and "Traceback" in err


def test_random_bitflips_never_escape(good_store, tmp_path, capsys):
    data = good_store.read_bytes()
    for frac in (0.002, 0.05, 0.3, 0.6, 0.95):
        b = bytearray(data)
        b[int(frac * len(b))] ^= 0x5A
        bad = tmp_path / "flip.h5"
        bad.write_bytes(bytes(b))
        for cmd in (["info", bad], ["check", bad, "--no-progress"]):
            rc, out, err = _cli(capsys, *cmd)  # an escaping exception fails the test
            assert rc in (0, 1, 2)
            if rc == 2:
                _assert_clean_error(rc, err, f"error: {bad}: ")


def test_append_to_damaged_store(good_store, tmp_path, capsys):
    bad = _damage(good_store, tmp_path / "s.h5", "truncated_half")
    src = _extxyz(tmp_path / "cu.extxyz")
    rc, out, err = _cli(capsys, "convert", src, "-o", bad, "--append", "--no-progress")
    _assert_clean_error(rc, err, str(bad), "cannot append", "nothing was written")


def test_damaged_h5_as_convert_source(tmp_path, capsys):
    bad = tmp_path / "data.h5"
    bad.write_bytes(b"")
    rc, out, err = _cli(capsys, "convert", bad, "-o", tmp_path / "o.h5", "--no-progress")
    _assert_clean_error(rc, err, str(bad), "not a readable HDF5 file")


# ------------------------------------------------------------------------------------------ unreadable sources
def test_empty_extxyz(tmp_path, capsys):
    src = tmp_path / "empty.extxyz"
    src.write_text("")
    rc, out, err = _cli(capsys, "convert", src, "-o", tmp_path / "o.h5", "--no-progress")
    _assert_clean_error(rc, err, str(src), "Empty file")
    assert not (tmp_path / "o.h5").exists()


@pytest.mark.parametrize("fmt, make, hint", [
    ("ase", "mlearn", "looks like mlearn-json"),
    ("mlearn-json", "extxyz", "looks like ase: try --format ase"),
    ("fitsnap-json", "mlearn", "looks like mlearn-json"),
])
def test_wrong_format(tmp_path, capsys, fmt, make, hint):
    src = _mlearn(tmp_path / "m.json", [{}]) if make == "mlearn" else _extxyz(tmp_path / "cu.extxyz")
    rc, out, err = _cli(capsys, "convert", src, "--format", fmt, "-o", tmp_path / "o.h5", "--no-progress")
    _assert_clean_error(rc, err, str(src), hint)
    assert not (tmp_path / "o.h5").exists()
