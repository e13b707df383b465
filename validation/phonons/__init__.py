"""Phonon validation: read a phonopy reference folder, recompute its displacements with a calculator, compare."""

from __future__ import annotations

from typing import Any

from gfm_ase.validation.phonons.reference import PhononReference, ReferenceError, load_references

__all__ = ["PhononReference", "ReferenceError", "load_references", "run_phonons"]


def __getattr__(name: str) -> Any:
    if name == "run_phonons":
        from gfm_ase.validation.phonons.suite import run_phonons

        return run_phonons
    raise AttributeError(name)
