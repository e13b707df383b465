#!/usr/bin/env python
"""Generate a surrogate-labelled corpus over the whole periodic table with a teacher model (CHGNet, SevenNet).

    .venv-teachers/bin/python pretraining/corpus/generate_teacher.py --teacher chgnet [--shards 60] [--max-minutes M]

SURROGATE LABELS: every energy, force and stress here is the teacher's prediction, not DFT. The teacher's name and
the level of theory it was trained to reproduce are recorded in the manifest (``subsets.<teacher>``) and travel into
the store attributes (``surrogate``) and the head metadata of every model trained on them.

One shard = one pass over the 89 elements the teachers know (H-Bi, Ac-Pu) in a seeded random order. For each
*focus* element one parent structure is built that contains it (kind drawn from ``KIND_WEIGHTS``; kinds the element
cannot take are skipped, e.g. no ionic role for a noble gas):

  elemental     fcc / bcc / hcp / sc / diamond cells
  ionic         charge-balanced rocksalt, zincblende, wurtzite, CsCl, fluorite, antifluorite, rutile, CdI2-layered
  perovskite    cubic ABX3;   spinel   AB2X4 (14 atoms)
  intermetallic B2, L1_2 A3B, L2_1 Heusler A2BC
  alloy         random 2-4 metal decorations of 8-atom fcc/bcc/hcp supercells
  surface       2-3 layer slabs cut from any of the above (vacuum inside a periodic cell)

and labelled as a family (``group`` = the parent, so splits by group keep relatives together):
  eos_*         an isotropic scan of the primitive cell (linear scales 0.92-1.08, extended once if the minimum is
                at an edge); the parabola minimum of E(V) is the parent's equilibrium scale
  rattle_*      a 6-16 atom supercell at that scale, near-equilibrium rattles (0.01-0.06 A, strain <= 1 %)
  hot_*         large rattles (0.08-0.20 A, the displacements of 1,000-3,000 K MD)
  strain_*      random symmetric strains up to 5 % plus a small rattle
  vacancy_*     one atom removed from the supercell, rattled
  relax_*       frames of a short FIRE relaxation from a hot rattle (every second frame kept)
  md_*          frames of a short teacher NVT (Langevin) run at 300-3,000 K (every sixth frame kept)

Rejected and counted in the manifest's ``stats``: geometries with two atoms closer than 0.55 x the sum of their
covalent radii, non-finite labels, |F| > 50 eV/A, and frames more than 5 eV/atom above the parent's E(V) minimum.

Units (ASE): energy eV (the teacher's total energy), forces eV/A, stress eV/A^3 tension-positive (Voigt).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from gfm_ase.pretraining.corpus import prototypes as P
from gfm_ase.pretraining.corpus.corpus_io import attach_labels, base_parser, log_to_stderr, run_shards
from gfm_ase.pretraining.corpus.teachers import TEACHER_PACKAGES, TEACHERS, get_teacher

if TYPE_CHECKING:
    from ase import Atoms
    from ase.calculators.calculator import Calculator

# a parent structure and its config_type; None where the focus element cannot take that kind
Parent = tuple["Atoms", str]
Builder = Callable[[np.random.Generator, str], Parent | None]
ShardFn = Callable[[int, np.random.Generator], tuple[dict[str, list["Atoms"]], dict[str, int]]]

KIND_WEIGHTS = {
    "elemental": 0.16,
    "ionic": 0.30,
    "perovskite": 0.10,
    "spinel": 0.03,
    "intermetallic": 0.14,
    "alloy": 0.15,
    "surface": 0.12,
}
SETTINGS: dict[str, Any] = dict(
    kind_weights=KIND_WEIGHTS,
    eos_scales=[0.92, 0.96, 1.0, 1.04, 1.08],
    eos_extend=0.08,
    bond_factor=[0.95, 1.10],
    supercell_atoms=[6, 16],
    rattles=2,
    rattle_range_A=[0.01, 0.06],
    hot_range_A=[0.08, 0.20],
    strains=2,
    strain_max=0.05,
    vacancy_prob=0.4,
    relax_prob=0.15,
    relax_steps=8,
    md_prob=0.10,
    md_steps=24,
    md_keep_every=6,
    md_timestep_fs=2.0,
    md_temperature_K=[300, 3000],
    max_neighbors_5A=220,
    slab_layers=[2, 3],
    slab_vacuum_A=6.0,
    clash_factor=0.55,
    max_force_eV_A=50.0,
    max_above_min_eV_atom=5.0,
    elements=P.ELEMENTS,
)
DEFAULT_SHARDS = 60


class Rejected(Exception):
    pass


# ------------------------------------------------------------------------------------------------ parents
def _d(rng: np.random.Generator, a: str, b: str) -> float:
    return P.bond(a, b, float(rng.uniform(*SETTINGS["bond_factor"])))


def make_elemental(rng: np.random.Generator, focus: str) -> Parent:
    f = float(rng.uniform(*SETTINGS["bond_factor"]))
    if focus in P.MOLECULAR:
        return P.molecular(focus, P.van_der_waals_spacing(focus) * f), "elemental_molecular"
    if focus in P.NOBLE:
        lattice = P._pick(rng, ["fcc", "hcp"])
        return P.elemental(focus, lattice, P.van_der_waals_spacing(focus) * f), f"elemental_{lattice}"
    if focus in ("B", "C", "Si", "Ge", "P", "As", "S", "Se", "Te", "Sb"):  # covalent: open lattices only
        lattice = P._pick(rng, ["diamond", "diamond", "sc"])
    elif focus == "Sn":
        lattice = P._pick(rng, ["diamond", "fcc", "bcc", "sc"])
    else:
        lattice = P._pick(rng, ["fcc", "bcc", "hcp", "sc"])
    return P.elemental(focus, lattice, _d(rng, focus, focus)), f"elemental_{lattice}"


def make_ionic(rng: np.random.Generator, focus: str) -> Parent | None:
    options = [(proto, rule) for proto, rules in P.IONIC_BINARY.items() for rule in rules]
    for k in rng.permutation(len(options)):
        proto, (qa, qb) = options[int(k)]
        pair = P.ionic_pair(rng, focus, qa, qb)
        if pair:
            a, b = pair
            return P.binary(proto, a, b, _d(rng, a, b)), f"ionic_{proto}"
    return None


def make_perovskite(rng: np.random.Generator, focus: str, spinel: bool = False) -> Parent | None:
    rules = P.SPINEL if spinel else P.PEROVSKITE
    for k in rng.permutation(len(rules)):
        qa, qb, qx = rules[int(k)]
        xs = P.ANIONS[-qx]
        cats_a = [s for s in P.ELEMENTS if qa in P.cation_states(s) and s not in P.ANION_SET]
        cats_b = [s for s in P.ELEMENTS if qb in P.cation_states(s) and s not in P.ANION_SET]
        if focus in xs:
            x, a, b = focus, P._pick(rng, cats_a), P._pick(rng, cats_b)
        elif focus in cats_a and (focus not in cats_b or rng.random() < 0.5):
            x, a, b = P._pick(rng, xs), focus, P._pick(rng, cats_b)
        elif focus in cats_b:
            x, a, b = P._pick(rng, xs), P._pick(rng, cats_a), focus
        else:
            continue
        d = _d(rng, b, x)
        if spinel:
            return P.spinel(a, b, x, d), "spinel"
        return P.perovskite(a, b, x, d), "perovskite"
    return None


def make_intermetallic(rng: np.random.Generator, focus: str) -> Parent | None:
    ms = P.metals()
    if focus not in ms:
        return None
    proto = P._pick(rng, ["b2", "l12", "heusler"])
    others = [m for m in ms if m != focus]
    a, b, c = focus, P._pick(rng, others), P._pick(rng, others)
    if rng.random() < 0.5:
        a, b = b, a
    if proto == "b2":
        return P.binary("cscl", a, b, _d(rng, a, b)), "intermetallic_b2"
    if proto == "l12":
        return P.binary("l12", a, b, _d(rng, a, b)), "intermetallic_l12"
    return P.heusler(a, b, c, _d(rng, a, b)), "intermetallic_heusler"


def make_alloy(rng: np.random.Generator, focus: str) -> Parent | None:
    ms = P.metals()
    if focus not in ms:
        return None
    k = int(rng.integers(2, 5))
    others = [m for m in ms if m != focus]
    species = [focus] + [others[int(i)] for i in rng.choice(len(others), size=k - 1, replace=False)]
    lattice = P._pick(rng, ["fcc", "bcc", "hcp"])
    d = float(np.mean([P.bond(a, a) for a in species])) * float(rng.uniform(*SETTINGS["bond_factor"]))
    prim = P.elemental(focus, lattice, d)
    atoms = prim.repeat((2, 2, 2) if len(prim) == 1 else (2, 2, 1))
    sym = [species[int(i)] for i in rng.integers(0, k, size=len(atoms))]
    sym[0] = focus
    atoms.set_chemical_symbols(sym)
    return atoms, f"alloy_{lattice}"


BUILDERS: dict[str, Builder] = {
    "elemental": make_elemental,
    "ionic": make_ionic,
    "perovskite": make_perovskite,
    "spinel": lambda rng, f: make_perovskite(rng, f, spinel=True),
    "intermetallic": make_intermetallic,
    "alloy": make_alloy,
}


def make_parent(rng: np.random.Generator, focus: str) -> tuple[Atoms, str, str]:
    """(Atoms, config_type, kind) of a parent containing ``focus``; falls back to an elemental cell."""
    kinds = list(KIND_WEIGHTS)
    w = np.array([KIND_WEIGHTS[k] for k in kinds])
    for k in rng.choice(len(kinds), size=len(kinds), replace=False, p=w / w.sum()):
        kind = kinds[int(k)]
        if kind == "surface":
            base_kind = P._pick(rng, ["elemental", "ionic", "intermetallic"])
            made = BUILDERS[base_kind](rng, focus)
            if made is not None:
                return made[0], "surface_" + made[1], "surface"
            continue
        made = BUILDERS[kind](rng, focus)
        if made is not None:
            return made[0], made[1], kind
    atoms, ct = make_elemental(rng, focus)
    return atoms, ct, "elemental"


# ------------------------------------------------------------------------------------------------ geometry
def clash(atoms: Atoms, factor: float) -> bool:
    """True if two atoms (periodic images included) are closer than ``factor`` x the sum of covalent radii, or
    the structure is absurdly dense (more than ``max_neighbors_5A`` neighbours within 5 A per atom on average:
    the teachers' graphs then exhaust memory)."""
    from ase.neighborlist import neighbor_list

    if atoms.get_volume() / len(atoms) < 2.0:
        return True
    r = np.array([P.radius(s) for s in atoms.get_chemical_symbols()])
    i, j, d = neighbor_list("ijd", atoms, 5.0)
    if len(d) > SETTINGS["max_neighbors_5A"] * len(atoms):
        return True
    return bool(np.any(d < factor * (r[i] + r[j]))) if len(d) else False


def scaled(atoms: Atoms, s: float) -> Atoms:
    out = atoms.copy()
    out.set_cell(atoms.cell * s, scale_atoms=True)
    return out


def supercell(atoms: Atoms, size: Sequence[int] | None = None) -> Atoms:
    """The smallest repeat of ``atoms`` (growing its shortest axis first) with at least ``size[0]`` atoms, stopping
    before ``size[1]`` (default ``supercell_atoms``)."""
    lo, hi = size if size is not None else SETTINGS["supercell_atoms"]
    reps = np.ones(3, dtype=int)
    lengths = atoms.cell.lengths()
    while len(atoms) * reps.prod() < lo:
        k = int(np.argmin(lengths * reps))
        if len(atoms) * reps.prod() * (reps[k] + 1) / reps[k] > hi:
            break
        reps[k] += 1
    return atoms.repeat(tuple(int(x) for x in reps))


def rattle(atoms: Atoms, rng: np.random.Generator, sigma: float) -> Atoms:
    out = atoms.copy()
    out.positions += rng.normal(0.0, sigma, size=out.positions.shape)
    return out


def strain(atoms: Atoms, rng: np.random.Generator, eps_max: float) -> Atoms:
    e = rng.uniform(-eps_max, eps_max, size=(3, 3))
    e = 0.5 * (e + e.T)
    out = atoms.copy()
    out.set_cell(atoms.cell @ (np.eye(3) + e), scale_atoms=True)
    return out


def slab(atoms: Atoms, rng: np.random.Generator) -> Atoms | None:
    from ase.build import surface

    idx = P._pick(rng, [(0, 0, 1), (1, 1, 0), (1, 1, 1), (1, 0, 0)])
    layers = int(rng.integers(SETTINGS["slab_layers"][0], SETTINGS["slab_layers"][1] + 1))
    s = surface(atoms, idx, layers, vacuum=SETTINGS["slab_vacuum_A"], periodic=True)
    s.pbc = True
    return s if 2 <= len(s) <= 24 else None


# ------------------------------------------------------------------------------------------------ labelling
class Labeller:
    """Labels a geometry with the teacher, or rejects it (counted in ``stats``). ``calc`` replaces the teacher's
    own calculator (tests use a cheap pair potential)."""

    def __init__(self, teacher_name: str, calc: Calculator | None = None) -> None:
        self.teacher = get_teacher(teacher_name)
        self.calc = calc if calc is not None else self.teacher.factory()
        self.stats: dict[str, int] = {}

    def count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1

    def __call__(self, atoms: Atoms, config_type: str, group: str) -> Atoms:
        if clash(atoms, SETTINGS["clash_factor"]):
            self.count("rejected_clash")
            raise Rejected("clash")
        work = atoms.copy()
        work.calc = self.calc
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                e = float(work.get_potential_energy())
                f = np.array(work.get_forces(), dtype=float)
                s = np.array(work.get_stress(), dtype=float)
        except Exception:  # noqa: BLE001 - a teacher failure on one geometry is counted, not fatal
            self.count("teacher_failed")
            raise Rejected("teacher") from None
        if not (np.isfinite(e) and np.isfinite(f).all() and np.isfinite(s).all()):
            self.count("rejected_nonfinite")
            raise Rejected("nonfinite")
        if np.abs(f).max(initial=0.0) > SETTINGS["max_force_eV_A"]:
            self.count("rejected_force")
            raise Rejected("force")
        atoms = atoms.copy()
        atoms.info.update(config_type=config_type, group=group)
        return attach_labels(atoms, e, f, s)


def eos_minimum(parent: Atoms, add: Callable[[Atoms, str], Atoms | None]) -> tuple[float, float] | None:
    """(linear scale, energy per atom) at the minimum of the teacher's E(V) of ``parent``: ``add(atoms, "eos")``
    labels and keeps each scan point (None when rejected); a parabola in V through the points, the scan extended
    once when the lowest point is at an edge. None when no point could be labelled."""
    scales = list(SETTINGS["eos_scales"])
    eos: list[tuple[float, float]] = []
    for s in scales:
        fr = add(scaled(parent, s), "eos")
        if fr is not None:
            eos.append((s, fr.get_potential_energy() / len(fr)))
    if len(eos) >= 3:
        best = min(eos, key=lambda t: t[1])[0]
        if best in (scales[0], scales[-1]):  # minimum at an edge: extend the scan once
            s = best + (SETTINGS["eos_extend"] if best == scales[-1] else -SETTINGS["eos_extend"])
            fr = add(scaled(parent, s), "eos")
            if fr is not None:
                eos.append((s, fr.get_potential_energy() / len(fr)))
        xs = np.array([t[0] for t in eos]) ** 3
        ys = np.array([t[1] for t in eos])
        c = np.polyfit(xs, ys, 2)
        lo, hi = xs.min(), xs.max()
        v = -c[1] / (2 * c[0]) if c[0] > 0 else xs[np.argmin(ys)]
        return float(np.clip(v, lo, hi)) ** (1 / 3), float(ys.min())
    if eos:
        return eos[0][0], eos[0][1]
    return None


class Family:
    """The labelled frames of one parent: ``add(atoms, tag)`` labels a geometry as config_type ``{tag}_{ct}`` in
    ``group`` and keeps it (returns None when the labeller rejects it); ``near_minimum(e_min)`` drops the frames more
    than ``max_above_min_eV_atom`` above the parent's E(V) minimum (collapsed or exploded states), counting them."""

    def __init__(self, lab: Labeller, ct: str, group: str) -> None:
        self.lab, self.ct, self.group = lab, ct, group
        self.frames: list[Atoms] = []

    def add(self, atoms: Atoms, tag: str) -> Atoms | None:
        try:
            fr = self.lab(atoms, f"{tag}_{self.ct}", self.group)
        except Rejected:
            return None
        self.frames.append(fr)
        return fr

    def near_minimum(self, e_min: float, max_above: float) -> list[Atoms]:
        keep = [fr for fr in self.frames if fr.get_potential_energy() / len(fr) - e_min <= max_above]
        for _ in range(len(self.frames) - len(keep)):
            self.lab.count("rejected_energy")
        return keep


def family(lab: Labeller, parent: Atoms, ct: str, group: str, rng: np.random.Generator, kind: str) -> list[Atoms]:
    """All labelled frames of one parent (see the module docstring)."""
    fam = Family(lab, ct, group)
    add, out = fam.add, fam.frames
    found = eos_minimum(parent, add)
    if found is None:
        lab.count("parent_dropped")
        return out
    s_min, e_min = found
    eq = scaled(parent, s_min)
    if kind == "surface":
        sl = slab(eq, rng)
        if sl is None:
            lab.count("slab_dropped")
            return out
        sc = sl
    else:
        sc = supercell(eq)
    lo, hi = SETTINGS["rattle_range_A"]
    for _ in range(SETTINGS["rattles"]):
        base = strain(sc, rng, 0.01) if kind != "surface" else sc
        add(rattle(base, rng, float(rng.uniform(lo, hi))), "rattle")
    hot = rattle(sc, rng, float(rng.uniform(*SETTINGS["hot_range_A"])))
    add(hot, "hot")
    if kind != "surface":
        for _ in range(SETTINGS["strains"]):
            add(rattle(strain(sc, rng, SETTINGS["strain_max"]), rng, 0.03), "strain")
    if len(sc) >= 4 and rng.random() < SETTINGS["vacancy_prob"]:
        vac = sc.copy()
        del vac[int(rng.integers(len(vac)))]
        add(rattle(vac, rng, 0.03), "vacancy")
    if rng.random() < SETTINGS["relax_prob"]:
        _relax_path(lab, hot, ct, group, out)
    if rng.random() < SETTINGS["md_prob"]:
        _md(lab, sc, ct, group, rng, out)
    return fam.near_minimum(e_min, SETTINGS["max_above_min_eV_atom"])


def _relax_path(lab: Labeller, start: Atoms, ct: str, group: str, out: list[Atoms]) -> None:
    from ase.optimize import FIRE

    if clash(start, SETTINGS["clash_factor"]):
        return
    work = start.copy()
    work.calc = lab.calc
    frames = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt = FIRE(work, logfile=None)
            for k in range(SETTINGS["relax_steps"]):
                opt.run(fmax=0.05, steps=1)
                if k % 2 == 1:
                    frames.append(work.copy())
    except Exception:  # noqa: BLE001
        lab.count("relax_failed")
        return
    for fr in frames:
        try:
            out.append(lab(fr, f"relax_{ct}", group))
        except Rejected:
            pass


def _md(lab: Labeller, start: Atoms, ct: str, group: str, rng: np.random.Generator, out: list[Atoms]) -> None:
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    t_k = float(rng.uniform(*SETTINGS["md_temperature_K"]))
    work = start.copy()
    work.calc = lab.calc
    frames = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            MaxwellBoltzmannDistribution(work, temperature_K=t_k, rng=rng)
            dyn = Langevin(work, SETTINGS["md_timestep_fs"] * units.fs, temperature_K=t_k, friction=0.02, rng=rng)
            for k in range(SETTINGS["md_steps"]):
                dyn.run(1)
                if (k + 1) % SETTINGS["md_keep_every"] == 0:
                    frames.append(work.copy())
    except Exception:  # noqa: BLE001
        lab.count("md_failed")
        return
    for fr in frames:
        fr.set_momenta(np.zeros((len(fr), 3)))  # labels only: no velocities in the corpus
        try:
            out.append(lab(fr, f"md_{ct}", group))
        except Rejected:
            pass


def label_families(lab: Labeller, jobs: Iterable[tuple[str, Callable[[], list[Atoms]]]]) -> list[Atoms]:
    """The frames of every job ``(what, make)`` in order (``jobs`` may be lazy, so a job's random draws happen
    when it runs); a job whose structure cannot be built is counted (``build_failed``) and logged, not fatal."""
    frames: list[Atoms] = []
    for what, make in jobs:
        try:
            frames += make()
        except Exception as exc:  # noqa: BLE001 - a structure that cannot be built is counted, not fatal
            lab.count("build_failed")
            log_to_stderr(f"{what}: {type(exc).__name__}: {exc}")
    return frames


def make_shard_fn(teacher: str, elements: Iterable[str] | None = None, calc: Calculator | None = None) -> ShardFn:
    """``make_shard(shard, rng)`` for corpus_io.run_shards: one pass over ``elements`` (default: all 89)."""
    lab = Labeller(teacher, calc)
    els = list(elements or P.ELEMENTS)

    def make_shard(shard: int, rng: np.random.Generator) -> tuple[dict[str, list[Atoms]], dict[str, int]]:
        lab.stats = {}
        frames: list[Atoms] = []
        kinds: dict[str, int] = {}
        for i, k in enumerate(rng.permutation(len(els))):
            focus = els[int(k)]
            try:
                parent, ct, kind = make_parent(rng, focus)
            except Exception as exc:  # noqa: BLE001 - a prototype that cannot be built is counted
                lab.count("build_failed")
                log_to_stderr(f"build failed for {focus}: {exc}")
                continue
            kinds[kind] = kinds.get(kind, 0) + 1
            frames += family(lab, parent, ct, f"{teacher}-{shard}-{i}", rng, kind)
        stats = dict(lab.stats)
        stats.update({f"parents_{k}": v for k, v in kinds.items()})
        return {teacher: frames}, stats

    return make_shard


def run_teacher_corpus(
    kind: str,
    args: argparse.Namespace,
    settings: dict[str, Any],
    make_shard: Callable[[str], ShardFn],
    what: str = "",
    shards: Iterable[int] | None = None,
) -> None:
    """Generate (or resume) the shards of a teacher-labelled data set ``<kind>_<teacher>``: one torch thread, the
    teacher's name and surrogate string added to ``settings`` (so to their hash), ``make_shard(teacher_name)`` per
    shard, ``shards`` (default ``range(args.shards)``); ``what`` starts the manifest's description."""
    import torch

    torch.set_num_threads(1)
    t = get_teacher(args.teacher)
    out = args.out if args.out.name != kind else args.out.parent / f"{kind}_{args.teacher}"
    run_shards(
        name=f"{kind}_{t.name}",
        out=out,
        seed=args.seed,
        shards=range(args.shards) if shards is None else shards,
        subsets=t.manifest_subsets(),
        settings=dict(settings, teacher=t.name, surrogate=t.surrogate),
        make_shard=make_shard(t.name),
        packages=TEACHER_PACKAGES,
        description=f"{what}surrogate labels by {t.surrogate} ({t.level_of_theory})",
        max_minutes=args.max_minutes,
        log=log_to_stderr,
    )


def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__.splitlines()[1], "teacher", DEFAULT_SHARDS)
    p.add_argument("--teacher", required=True, choices=sorted(TEACHERS))
    p.add_argument("--first-shard", type=int, default=0, help="first shard index (default: %(default)s)")
    p.add_argument("--elements", nargs="*", default=None, help="restrict the focus elements (tests)")
    args = p.parse_args(argv)
    settings = dict(SETTINGS)
    if args.elements:
        settings["elements"] = list(args.elements)
    run_teacher_corpus(
        "teacher",
        args,
        settings,
        lambda name: make_shard_fn(name, args.elements),
        shards=range(args.first_shard, args.first_shard + args.shards),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
