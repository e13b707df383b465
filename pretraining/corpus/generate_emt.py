#!/usr/bin/env python
"""Generate the EMT corpus: metals, alloys, defects, surfaces and clusters labelled with ASE's EMT.

Level of theory: effective-medium theory as implemented in ``ase.calculators.emt.EMT`` (Jacobsen, Stoltze and
Norskov 1996 parameters for Al Cu Ag Au Ni Pd Pt; ASE's own rough H, C, N, O parameters, used here only for a few
dilute interstitials and adsorbates in metal hosts and flagged by ``config_type``).  EMT is a cheap empirical
potential, not DFT: it is a low-fidelity pretraining task (head ``emt``), never a reference for materials.

Units (ASE): energy eV (EMT's energy zero: the free atoms sit near 0 eV), forces eV/A, stress eV/A^3 tension-positive,
stored only for 3D-periodic cells (slabs and clusters carry energy and forces).

Structures (2-64 atoms each; each with ``config_type`` and a ``group`` per parent structure):
  bulk      elemental fcc/bcc/hcp/sc supercells, strained (+-5 %, shears), volume-scaled and rattled (0.01-0.15 A)
  alloy     binary (mostly) and ternary/quaternary random decorations of the same lattices, strained and rattled
  vacancy   bulk or alloy supercells with 1-2 vacancies
  surface   fcc(111)/(100)/(110), bcc(110)/(100), hcp(0001) slabs (pbc T T F), pure or alloyed, rattled
  cluster   icosahedra, octahedra, decahedra, random compact clusters and dimers (no pbc)
  interstitial / adsorbate   H, C, N, O in or on metal hosts (EMT's rough light-element parameters)

Run with no arguments: ``python pretraining/corpus/generate_emt.py`` writes ``work_data/generated/emt/`` and resumes.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from gfm_ase.pretraining.corpus.corpus_io import attach_labels, base_parser, log_to_stderr, run_shards

if TYPE_CHECKING:
    from ase import Atoms

NAME = "emt"
METALS = ["Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt"]
LIGHT = ["H", "C", "N", "O"]
# experimental fcc lattice constants (A), which EMT was fitted to
A_FCC = {"Al": 4.05, "Cu": 3.61, "Ag": 4.09, "Au": 4.08, "Ni": 3.52, "Pd": 3.89, "Pt": 3.92}
KIND_WEIGHTS = {
    "bulk": 0.25,
    "alloy": 0.33,
    "vacancy": 0.10,
    "surface": 0.15,
    "cluster": 0.11,
    "interstitial": 0.03,
    "adsorbate": 0.03,
}
SETTINGS: dict[str, Any] = dict(
    structures_per_shard=200,
    min_atoms=2,
    max_atoms=64,
    rattle_range_A=[0.01, 0.15],
    strain_max=0.05,
    volume_scale_linear=[0.96, 1.05],
    vacuum_A=[6.0, 9.0],
    kind_weights=KIND_WEIGHTS,
    metals=METALS,
    light_elements=LIGHT,
    calculator="ase.calculators.emt.EMT()",
)
DEFAULT_SHARDS = 100  # 100 x 200 = 20 000 structures


def mean_fcc_a(symbols: Iterable[str]) -> float:
    """Vegard's-law fcc lattice constant of a metal composition (light elements ignored)."""
    a = [A_FCC[s] for s in symbols if s in A_FCC]
    return float(np.mean(a))


def lattice_cell(lattice: str, a_fcc: float, rng: np.random.Generator) -> Atoms:
    """A small periodic cell of one metal lattice with the atomic volume of fcc(a_fcc); returns Atoms (Cu labels)."""
    from ase.build import bulk

    vol = a_fcc**3 / 4.0  # volume per atom
    if lattice == "fcc":
        return bulk("Cu", "fcc", a=a_fcc, cubic=bool(rng.random() < 0.5))
    if lattice == "bcc":
        return bulk("Cu", "bcc", a=(2 * vol) ** (1 / 3), cubic=bool(rng.random() < 0.5))
    if lattice == "hcp":
        c_over_a = float(rng.uniform(1.56, 1.70))
        a = (2 * vol / (np.sqrt(3) / 2 * c_over_a)) ** (1 / 3)
        return bulk("Cu", "hcp", a=a, c=c_over_a * a, orthorhombic=bool(rng.random() < 0.3))
    if lattice == "sc":
        return bulk("Cu", "sc", a=vol ** (1 / 3))
    raise ValueError(lattice)


def supercell(cell_atoms: Atoms, rng: np.random.Generator, min_atoms: int = 2, max_atoms: int = 64) -> Atoms:
    """Repeat a cell (n1, n2, n3) with a size drawn log-uniformly in [min_atoms, max_atoms]."""
    n0 = len(cell_atoms)
    target = np.exp(rng.uniform(np.log(min_atoms), np.log(max_atoms)))
    best: tuple[int, np.ndarray] | None = None
    for _ in range(50):
        reps = rng.integers(1, 5, size=3)
        n = n0 * int(np.prod(reps))
        if min_atoms <= n <= max_atoms:
            if best is None or abs(np.log(n / target)) < abs(np.log(best[0] / target)):
                best = (n, reps)
    if best is None:
        reps = np.array([1, 1, 1])
        while n0 * np.prod(reps) < min_atoms:
            reps[np.argmin(reps)] += 1
        best = (n0 * int(np.prod(reps)), reps)
    return cell_atoms.repeat(tuple(int(r) for r in best[1]))


def strain(atoms: Atoms, rng: np.random.Generator, max_strain: float) -> Atoms:
    """Random symmetric strain (diagonal and shear components up to max_strain) plus scaled positions."""
    s = float(rng.uniform(0.0, max_strain))
    eps = rng.uniform(-s, s, size=(3, 3))
    eps = 0.5 * (eps + eps.T)
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    return atoms


def rattle(atoms: Atoms, rng: np.random.Generator, lo: float, hi: float) -> float:
    sigma = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    atoms.positions += rng.normal(0.0, sigma, size=atoms.positions.shape)
    return sigma


def decorate(atoms: Atoms, elements: Sequence[str], rng: np.random.Generator) -> Atoms:
    """Random substitutional decoration with a random composition over ``elements`` (each present)."""
    n = len(atoms)
    k = min(len(elements), n)
    elements = list(elements)[:k]
    frac = rng.dirichlet(np.ones(k))
    counts = np.maximum(1, np.round(frac * n).astype(int))
    while counts.sum() > n:
        counts[np.argmax(counts)] -= 1
    while counts.sum() < n:
        counts[rng.integers(k)] += 1
    symbols = np.repeat(elements, counts)
    rng.shuffle(symbols)
    atoms.set_chemical_symbols(list(symbols))
    return atoms


def min_distance_ok(atoms: Atoms, dmin: float) -> bool:
    """True when no two atoms (periodic images included) are closer than dmin (A)."""
    from ase.neighborlist import neighbor_list

    return len(neighbor_list("d", atoms, dmin)) == 0


def pick_metals(rng: np.random.Generator, k: int) -> list[str]:
    return [str(x) for x in rng.choice(METALS, size=k, replace=False)]


def make_bulk(rng: np.random.Generator, alloy: bool) -> Atoms:
    lattice = str(rng.choice(["fcc", "fcc", "bcc", "hcp", "sc"], p=[0.3, 0.2, 0.22, 0.22, 0.06]))
    k = 1
    if alloy:
        k = int(rng.choice([2, 3, 4], p=[0.75, 0.17, 0.08]))
    els = pick_metals(rng, k)
    base = lattice_cell(lattice, 1.0, rng)
    atoms = supercell(base, rng, SETTINGS["min_atoms"], SETTINGS["max_atoms"])
    if alloy:
        decorate(atoms, els, rng)
    else:
        atoms.set_chemical_symbols([els[0]] * len(atoms))
    a = mean_fcc_a(atoms.get_chemical_symbols()) * rng.uniform(*SETTINGS["volume_scale_linear"])
    atoms.set_cell(atoms.cell.array * a, scale_atoms=True)
    strain(atoms, rng, SETTINGS["strain_max"])
    sigma = rattle(atoms, rng, *SETTINGS["rattle_range_A"])
    atoms.info.update(config_type=f"{'alloy' if alloy else 'bulk'}_{lattice}", rattle_A=round(sigma, 4))
    return atoms


def make_vacancy(rng: np.random.Generator) -> Atoms:
    atoms: Atoms | None = None
    while atoms is None or len(atoms) < 8:
        atoms = make_bulk(rng, alloy=bool(rng.random() < 0.5))
    kind = atoms.info["config_type"]
    nvac = 1 if (len(atoms) < 24 or rng.random() < 0.7) else 2
    for i in sorted(rng.choice(len(atoms), size=nvac, replace=False), reverse=True):
        del atoms[int(i)]
    atoms.info["config_type"] = f"vacancy{nvac}_{kind}"
    return atoms


def make_surface(rng: np.random.Generator, adsorbate: bool = False) -> Atoms:
    from ase.build import bcc100, bcc110, fcc100, fcc110, fcc111, hcp0001

    builders: dict[str, Callable[..., Atoms]] = {
        "fcc111": fcc111,
        "fcc100": fcc100,
        "fcc110": fcc110,
        "bcc110": bcc110,
        "bcc100": bcc100,
        "hcp0001": hcp0001,
    }
    facet = str(rng.choice(list(builders), p=[0.3, 0.2, 0.12, 0.14, 0.1, 0.14]))
    alloy = bool(rng.random() < 0.4)
    els = pick_metals(rng, 2 if alloy else 1)
    a_fcc = mean_fcc_a(els) * rng.uniform(0.98, 1.03)
    vol = a_fcc**3 / 4
    for _ in range(100):
        nx, ny = (int(x) for x in rng.integers(1, 4, size=2))
        layers = int(rng.integers(3, 7))
        if 4 <= nx * ny * layers <= SETTINGS["max_atoms"] - 2:
            break
    vac = float(rng.uniform(*SETTINGS["vacuum_A"]))
    if facet.startswith("fcc"):
        slab = builders[facet]("Cu", size=(nx, ny, layers), a=a_fcc, vacuum=vac)
    elif facet.startswith("bcc"):
        slab = builders[facet]("Cu", size=(nx, ny, layers), a=(2 * vol) ** (1 / 3), vacuum=vac)
    else:
        a = (2 * vol / (np.sqrt(3) / 2 * 1.633)) ** (1 / 3)
        slab = hcp0001("Cu", size=(nx, ny, layers), a=a, c=1.633 * a, vacuum=vac)
    slab.info.pop("adsorbate_info", None)
    if alloy:
        decorate(slab, els, rng)
    else:
        slab.set_chemical_symbols([els[0]] * len(slab))
    kind = f"surface_{facet}"
    if adsorbate:
        n_ads = int(rng.integers(1, 3))
        top = slab.positions[:, 2].max()
        top_idx = np.where(slab.positions[:, 2] > top - 0.5)[0]
        for _ in range(n_ads):
            x = str(rng.choice(LIGHT))
            host = slab.positions[int(rng.choice(top_idx))]
            shift = rng.normal(0, 0.8, size=2)
            slab.append(x)
            slab.positions[-1] = [host[0] + shift[0], host[1] + shift[1], top + rng.uniform(1.0, 2.0)]
        kind = f"adsorbate_{facet}"
    sigma = rattle(slab, rng, 0.01, 0.10)
    slab.info.update(config_type=kind, rattle_A=round(sigma, 4))
    return slab


def make_cluster(rng: np.random.Generator) -> Atoms:
    from ase import Atoms
    from ase.cluster import Decahedron, Icosahedron, Octahedron

    kind = str(
        rng.choice(["icosahedron", "octahedron", "decahedron", "random", "dimer"], p=[0.15, 0.15, 0.1, 0.45, 0.15])
    )
    alloy = bool(rng.random() < 0.35)
    els = pick_metals(rng, 2 if alloy else 1)
    a_fcc = mean_fcc_a(els)
    nn = a_fcc / np.sqrt(2)
    if kind == "icosahedron":
        atoms = Icosahedron("Cu", noshells=int(rng.integers(2, 4)), latticeconstant=a_fcc)
    elif kind == "octahedron":
        length, cutoff = [(2, 0), (3, 0), (3, 1), (4, 1), (4, 0), (5, 2)][int(rng.integers(6))]
        atoms = Octahedron("Cu", length=length, cutoff=cutoff, latticeconstant=a_fcc)
    elif kind == "decahedron":
        p, q, r = [(2, 1, 0), (2, 2, 0), (3, 1, 0)][int(rng.integers(3))]
        atoms = Decahedron("Cu", p=p, q=q, r=r, latticeconstant=a_fcc)
    elif kind == "dimer":
        d = nn * rng.uniform(0.75, 1.6)
        atoms = Atoms("Cu2", positions=[[0, 0, 0], [0, 0, d]])
    else:  # random compact cluster: sequential random placement at near-neighbour distance
        n = int(rng.integers(3, 31))
        pos = [np.zeros(3)]
        while len(pos) < n:
            anchor = pos[int(rng.integers(len(pos)))]
            v = rng.normal(size=3)
            cand = anchor + v / np.linalg.norm(v) * nn * rng.uniform(0.9, 1.15)
            if min(np.linalg.norm(cand - p) for p in pos) > 0.85 * nn:
                pos.append(cand)
        atoms = Atoms(f"Cu{n}", positions=np.array(pos))
    atoms = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, pbc=False)
    if alloy:
        decorate(atoms, els, rng)
    else:
        atoms.set_chemical_symbols([els[0]] * len(atoms))
    atoms.positions *= rng.uniform(0.96, 1.04)
    sigma = rattle(atoms, rng, 0.01, 0.12) if kind != "dimer" else 0.0
    atoms.positions -= atoms.positions.mean(axis=0)
    atoms.info.update(config_type=f"cluster_{kind}", rattle_A=round(sigma, 4))
    return atoms


def make_interstitial(rng: np.random.Generator) -> Atoms:
    """1-2 light atoms (H C N O) at octahedral sites of an fcc metal supercell (8-32 metal atoms)."""
    from ase.build import bulk

    el = pick_metals(rng, 1)[0]
    a = A_FCC[el] * rng.uniform(0.99, 1.04)
    reps = [(2, 1, 1), (2, 2, 1), (2, 2, 2)][int(rng.integers(3))]
    atoms = bulk(el, "fcc", a=a, cubic=True).repeat(reps)
    octa = (np.array([0.5, 0.0, 0.0]) + np.indices(reps).reshape(3, -1).T) * a
    for i in rng.choice(len(octa), size=min(len(octa), int(rng.integers(1, 3))), replace=False):
        atoms.append(str(rng.choice(LIGHT)))
        atoms.positions[-1] = octa[int(i)]
    strain(atoms, rng, 0.03)
    sigma = rattle(atoms, rng, 0.01, 0.10)
    atoms.info.update(config_type="interstitial_fcc", rattle_A=round(sigma, 4))
    return atoms


def make_structure(kind: str, rng: np.random.Generator) -> Atoms:
    if kind in ("bulk", "alloy"):
        return make_bulk(rng, alloy=(kind == "alloy"))
    if kind == "vacancy":
        return make_vacancy(rng)
    if kind == "surface":
        return make_surface(rng)
    if kind == "adsorbate":
        return make_surface(rng, adsorbate=True)
    if kind == "cluster":
        return make_cluster(rng)
    if kind == "interstitial":
        return make_interstitial(rng)
    raise ValueError(kind)


def make_shard(
    shard: int, rng: np.random.Generator, n_structures: int | None = None
) -> tuple[dict[str, list[Atoms]], dict[str, int]]:
    from ase.calculators.emt import EMT

    n_structures = n_structures or SETTINGS["structures_per_shard"]
    kinds = list(KIND_WEIGHTS)
    p = np.array([KIND_WEIGHTS[k] for k in kinds])
    calc = EMT()
    frames: list[Atoms] = []
    stats = {"rejected_geometry": 0, "failed": 0}
    i = 0
    while len(frames) < n_structures:
        kind = str(rng.choice(kinds, p=p / p.sum()))
        atoms = make_structure(kind, rng)
        i += 1
        if not (SETTINGS["min_atoms"] <= len(atoms) <= SETTINGS["max_atoms"]) or not min_distance_ok(atoms, 1.0):
            stats["rejected_geometry"] += 1
            continue
        atoms.calc = calc
        try:
            e, f = atoms.get_potential_energy(), atoms.get_forces()
            s = atoms.get_stress() if np.all(atoms.pbc) else None
        except Exception:  # noqa: BLE001 - count and skip; EMT raises on unsupported elements only
            stats["failed"] += 1
            continue
        atoms.info.update(group=f"emt:{shard}:{len(frames)}", method="EMT")
        frames.append(attach_labels(atoms, e, f, s))
    return {"emt": frames}, stats


SUBSETS = {
    "emt": {
        "level_of_theory": "EMT (ASE, Jacobsen-Stoltze-Norskov 1996)",
        "code": "ase.calculators.emt",
        "family": "empirical",
        "head_hint": "emt",
        "notes": "H/C/N/O parameters of ASE's EMT are rough; those structures have config_type "
        "interstitial_* or adsorbate_*",
    }
}


def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__.splitlines()[1], NAME, DEFAULT_SHARDS)
    p.add_argument("--per-shard", type=int, default=SETTINGS["structures_per_shard"])
    args = p.parse_args(argv)
    settings = dict(SETTINGS, structures_per_shard=args.per_shard)
    m = run_shards(
        name=NAME,
        out=args.out,
        seed=args.seed,
        shards=range(args.shards),
        subsets=SUBSETS,
        settings=settings,
        make_shard=lambda k, rng: make_shard(k, rng, args.per_shard),
        packages=("ase", "numpy"),
        description=__doc__,
        max_minutes=args.max_minutes,
        log=log_to_stderr,
    )
    log_to_stderr(f"[{NAME}] totals {m['totals']} elements {m['elements']} complete={m['complete']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
