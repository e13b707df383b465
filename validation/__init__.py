"""Validation suites: compare any ASE calculator with DFT references.

Each suite is a function taking an ASE calculator (or a zero-argument factory returning one) and returning a
:class:`~gfm_ase.validation.output.SuiteResult`; pass ``outdir`` to also write ``summary.json``, PNG plots and
``report.md``. The same suites run from the command line as ``gfm validate SUITE``.

- :func:`gfm_ase.validation.errors.run_errors`: energy/force/stress errors on labelled structures (per element,
  per group)
- :func:`gfm_ase.validation.eos.run_eos`: Delta test against the WIEN2k references of ``ase.collections.dcdft``
- :func:`gfm_ase.validation.phonons.run_phonons`: phonons against a phonopy reference folder (VASP, QE, FORCE_SETS, ...)
- :func:`gfm_ase.validation.relax.run_relax`: relaxations against reference relaxed structures
- :func:`gfm_ase.validation.md.run_md`: NVE energy drift, stability and an NVT temperature check
- :func:`gfm_ase.validation.report.run_report`: several suites from one YAML file, one report
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "run_errors": "gfm_ase.validation.errors",
    "run_eos": "gfm_ase.validation.eos",
    "run_phonons": "gfm_ase.validation.phonons",
    "run_relax": "gfm_ase.validation.relax",
    "run_md": "gfm_ase.validation.md",
    "run_report": "gfm_ase.validation.report",
    "SuiteResult": "gfm_ase.validation.output",
    "make_calculator": "gfm_ase.validation.calculators",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:  # lazy: importing `validation` must not pull in phonopy, pymatgen or matplotlib
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'gfm_ase.validation' has no attribute {name!r}")
