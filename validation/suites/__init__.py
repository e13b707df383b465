"""The validation suites, registered (``SUITES``: name -> :class:`~gfm_ase.validation.suites.registry.Suite`) in
the order ``gfm validate --help`` lists them. A new suite: its computation in ``validation/<suite>.py``, its
declaration (the command-line options, the report-YAML runner and the comparison tables) in a module here, and one
import line below."""

from gfm_ase.validation.suites import errors, eos, polymorphs, phonons, relax, md, dimers, contacts  # noqa: F401  (each registers itself)
from gfm_ase.validation.suites.registry import SUITES, Suite, register_suite

__all__ = ["SUITES", "Suite", "register_suite"]
