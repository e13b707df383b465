"""Report suite: run several suites from one YAML file and write one combined report.

Example (paths are relative to the YAML file)::

    title: gfm-mini PBE head
    calculator: emt                  # or "module:factory", or {model: gfm-mini, head: pbe, dtype: float64}
    suites:
      - suite: eos
        elements: [Cu, Al]
      - suite: phonons
        reference: ../shared/data/phonopy_examples/Si
        mesh: [12, 12, 12]
      - suite: md
        bulk: Cu
        nve_ps: 0.5
      - suite: errors
        data: test.extxyz
      - suite: relax
        reference: relaxed.extxyz

Each suite writes into OUTDIR/<name> (``name`` defaults to the suite); OUTDIR/report.md gathers them and
OUTDIR/summary.json holds every suite's headline numbers. A failing suite is reported, the others still run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ase.calculators.calculator import BaseCalculator

from gfm_ase.validation.calculators import CalculatorLike, describe, make_calculator
from gfm_ase.validation.output import SuiteResult, jsonable, shift_headers
from gfm_ase.validation.suites import SUITES as SUITE_REGISTRY


def run_suite(suite: str, calc: CalculatorLike, options: dict[str, Any], base: Path, outdir: Path) -> SuiteResult:
    """One suite from a YAML entry (``options`` without the ``suite``/``name`` keys)."""
    if suite not in SUITE_REGISTRY:
        raise ValueError(f"unknown suite {suite!r}; available: {', '.join(SUITE_REGISTRY)}")
    return SUITE_REGISTRY[suite].run_yaml(calc, dict(options), base, outdir)


def _calculator_from_config(spec: str | dict[str, Any] | None) -> BaseCalculator:
    if spec is None:
        raise ValueError("no calculator: give one in the YAML ('calculator:') or on the command line")
    if isinstance(spec, str):
        return make_calculator(spec)
    if isinstance(spec, dict):
        spec = dict(spec)
        if "model" in spec:
            return make_calculator(None, **spec)
        if "name" in spec:
            return make_calculator(spec.pop("name"), **spec)
    raise ValueError(f"calculator must be a name ('emt', 'module:factory') or {{model: ..., head: ...}}, got {spec!r}")


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or "suites" not in doc:
        raise ValueError(f"{path}: expected a mapping with a 'suites' list")
    suites = doc["suites"]
    if isinstance(suites, dict):  # {eos: {...}, md: {...}}
        suites = [{"suite": k, **(v or {})} for k, v in suites.items()]
    if not isinstance(suites, list) or not suites:
        raise ValueError(f"{path}: 'suites' must be a non-empty list (or mapping) of suites")
    for i, s in enumerate(suites):
        if not isinstance(s, dict) or s.get("suite") not in SUITE_REGISTRY:  # the suites of validation/suites
            raise ValueError(f"{path}: suites[{i}] needs 'suite' set to one of {tuple(SUITE_REGISTRY)}")
    names = [s.get("name", s["suite"]) for s in suites]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: suite names must be unique (give repeated suites a 'name'): {names}")
    doc["suites"] = suites
    return doc


def run_report(
    config: str | os.PathLike | dict[str, Any],
    calc: CalculatorLike | None = None,
    outdir: str | os.PathLike = "validation_report",
    base: str | os.PathLike | None = None,
) -> SuiteResult:
    """Run the suites of ``config`` (a YAML path or an already loaded mapping) and write one report."""
    if isinstance(config, dict):
        doc, base = config, Path(base or ".")
    else:
        doc, base = load_config(config), Path(config).resolve().parent
    calc = calc if calc is not None else _calculator_from_config(doc.get("calculator"))
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    results, failed = {}, {}
    for entry in doc["suites"]:
        entry = dict(entry)
        suite = entry.pop("suite")
        name = entry.pop("name", suite)
        try:
            results[name] = run_suite(suite, calc, entry, base, outdir / name)
        except Exception as exc:  # the report says which suite failed and why; the others still run
            failed[name] = f"{type(exc).__name__}: {exc}"
    title = doc.get("title", "Validation report")
    summary = {
        "title": title,
        "n_suites": len(doc["suites"]),
        "n_failed": len(failed),
        "suites": {name: jsonable(r.summary) for name, r in results.items()},
    }
    sections = []
    for name, r in results.items():
        r.title = r.suite if name == r.suite else f"{name} ({r.suite})"
        sections += [shift_headers(r.markdown(image_prefix=f"{name}/"), 1), ""]
    if failed:
        sections += ["## Failed suites", ""] + [f"- **{k}**: {v}" for k, v in failed.items()] + [""]
    details = {"failed": failed, "outdirs": {name: str(outdir / name) for name in results}}
    report = SuiteResult("report", describe(calc), summary, details, sections, title=title)
    report.write(outdir)
    return report
