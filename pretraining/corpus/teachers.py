"""Teacher models: universal potentials whose weights ship in their PyPI wheels, used as surrogate label sources.

They live in the separate ``.venv-teachers`` (``make teachers``), never in the project's core dependencies. Each
entry records the level of theory the teacher was trained to reproduce and the word *surrogate*, which travels into
the generated manifest, the store attributes and the head metadata of every model trained on its labels.

Energies: CHGNet 0.3.0 was trained on MPtrj energies *with* the MP2020 compatibility corrections (anion and
GGA+U corrections; 16-atom Mg8O8 is 5.4 eV lower than SevenNet-0's uncorrected value), SevenNet-0 on the
uncorrected MPtrj energies. The corrections are (almost) linear in composition, so per-element reference energies
absorb most of the difference, but the two are different label sets and are kept as separate datasets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from ase.calculators.calculator import Calculator


@dataclass(frozen=True)
class Teacher:
    name: str
    level_of_theory: str
    surrogate: str
    code: str
    factory: Callable[[], Calculator]
    head_hint: str

    def manifest_subsets(self) -> dict[str, dict[str, str]]:
        """The ``subsets`` entry of a generated data set labelled by this teacher (part of its manifest's settings
        hash, so a resumed run must see the same strings)."""
        return {
            self.name: {
                "level_of_theory": self.level_of_theory,
                "surrogate": self.surrogate,
                "code": self.code,
                "head_hint": self.head_hint,
            }
        }


# package versions recorded in the manifest of a teacher-labelled data set
TEACHER_PACKAGES = ("ase", "numpy", "torch", "chgnet", "sevenn", "pymatgen")


def _peer(key: str, head_hint: str, level: str | None = None, code: str | None = None) -> Teacher:
    """A teacher built on the peer calculators of the validation suites (validation/peers.py: one place that
    knows how to load each model, its elements and its level of theory)."""
    from gfm_ase.validation.peers import FACTORIES, PEERS

    info = PEERS[key]
    return Teacher(
        key,
        level or info["level_of_theory"],
        info["name"],
        code or f"{info['package']} {info['pinned']}: {info['model']}",
        FACTORIES[key],
        head_hint,
    )


TEACHERS = {
    # the strings the gfm-base corpus manifest was written with (they are part of its settings hash: resumable)
    "chgnet": _peer(
        "chgnet",
        "omat",
        "PBE/PBE+U (Materials Project / MPtrj settings, VASP), MP2020-corrected energies",
        "chgnet 0.3.1 wheel (model 0.3.0)",
    ),
    "sevennet0": _peer("sevennet0", "omat"),
    "sevennet_mf0_r2scan": _peer("sevennet_mf0_r2scan", "r2scan"),
}


def get_teacher(name: str) -> Teacher:
    try:
        return TEACHERS[name]
    except KeyError:
        raise ValueError(f"unknown teacher {name!r}; known: {sorted(TEACHERS)}") from None
