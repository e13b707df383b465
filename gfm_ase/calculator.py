"""GFMCalculator: an ASE calculator for one head of a gfm-ase model."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence, cast

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from gfm_ase.dispersion import D3Dispersion, check_dispersion_option, make_dispersion
from gfm_ase.graph.batch import graph_from_atoms
from gfm_ase.graph.neighbors import StructureError
from gfm_ase.graph.sanity import DEFAULT_FACTOR, SanityCheck, check_factor
from gfm_ase.graph.verlet import VerletGraph
from gfm_ase.model.gfm import GFMModel
from gfm_ase.runtime import InferenceRuntime, model_document, to_numpy
from gfm_ase.runtime.uncertainty import Spread


_ASE_CALCULATOR_ARGS = {"restart", "ignore_bad_restart_file", "label", "atoms", "directory"}


class GFMCalculator(Calculator):
    """Energy, forces and stress from one head of a gfm-ase model.

    model: built-in name (default: :func:`gfm_ase.hub.default_model`, ``gfm-base`` once installed, else
      ``gfm-mini``), a model directory, a training output directory, a URL with
      ``#sha256=...``, or an already built :class:`GFMModel`.
    head: the head (level of theory) to use; may be omitted only for single-head models. ``"auto"``: the model's
      router (shipped next to its weights, :mod:`gfm_ase.runtime.router`) picks the head per structure from its
      composition and periodicity; heads are never averaged. ``results["head"]`` names the head used.
    dtype: "float32" (default), "float64" or "bfloat16" (bf16 per-edge work; node layers, heads, sums in float32).
    allow_unknown_elements: evaluate elements outside the head's training data (with a warning) instead of refusing.
    min_distance: atoms closer than this (Angstrom) are refused as overlapping.
    min_distance_factor: the geometry sanity check (:mod:`gfm_ase.graph.sanity`): pairs closer than this fraction
      of the sum of their covalent radii (periodic images included) and cells too small for their atoms are
      refused with a :class:`~gfm_ase.graph.sanity.GeometryError`; default 0.4 (chosen from the converted
      training data, docs/bad-input.md), 0 disables it.
    skin: > 0 keeps a Verlet neighbor list (cutoff + skin, Angstrom) between calls and rebuilds it only when an atom
      has moved more than skin / 2 or the cell changed (:class:`gfm_ase.graph.verlet.VerletGraph`): same results,
      no neighbor search and edge-list transfer at most MD steps. 0 (default): a fresh graph at every call.
    compile: run the trunk through ``torch.compile`` (:class:`gfm_ase.model.compiled.CompiledTrunkModel`; the model
      itself is untouched). True, or a dict of ``torch.compile`` keyword arguments. The first call compiles (one
      to three minutes on a CPU, cached on disk afterwards), so it pays for long MD runs only (docs/performance.md).
    dispersion: None (default) or a DFT-D3 variant added to the head's energy, forces and stress: ``"d3bj"``,
      ``"d3bj-atm"`` or ``"d3zero"`` (:mod:`gfm_ase.dispersion`; simple-dftd3, extra ``d3``), with the damping
      parameters of the head's functional; a head without one (GFN2-xTB, EMT) is refused.
      ``results["dispersion_energy"]`` holds the D3 part of the energy.
    uncertainty: also give ``results["energy_std"]`` (eV) and ``results["forces_std"]`` ([n_atoms], eV/A): the spread
      of the head's committee, else of its family (:mod:`gfm_ase.runtime.uncertainty`, the definition screening
      uses). Costs a second trunk pass and one backward pass per member. A head with neither is an error.

    ``calc.parameters`` (and ``calc.todict()``, so ASE trajectories and databases) record what produced the numbers:
    model name and source, weights sha256, head and its level of theory, precision, dispersion and the options that
    change results (:mod:`gfm_ase.runtime.provenance`); never a machine path.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies", "energy_std", "forces_std"]

    def __init__(
        self,
        model: str | Path | GFMModel | None = None,
        head: str | None = None,
        device: str | torch.device = "auto",
        dtype: str = "float32",
        allow_unknown_elements: bool = False,
        min_distance: float = 0.3,
        skin: float = 0.0,
        compile: bool | dict[str, Any] = False,
        min_distance_factor: float | None = DEFAULT_FACTOR,
        dispersion: str | None = None,
        uncertainty: bool = False,
        **kwargs: Any,
    ) -> None:
        unknown = sorted(set(kwargs) - _ASE_CALCULATOR_ARGS)
        if unknown:  # ASE would store them as parameters and ignore them: a typo must not pass silently
            raise TypeError(f"GFMCalculator got unknown option(s) {unknown}")
        self.sanity = SanityCheck(check_factor(min_distance_factor))  # validated before the model is loaded
        check_dispersion_option(dispersion)
        if not isinstance(uncertainty, bool):
            raise TypeError(f"uncertainty must be True or False, got {uncertainty!r}")
        super().__init__(**kwargs)
        # model, device, precision, head, element coverage and compile: the shared inference runtime
        self.runtime = InferenceRuntime(model, head, device=device, dtype=dtype, compile=compile)
        if self.runtime.routed and uncertainty:
            raise ValueError(
                "head='auto' does not combine with uncertainty yet (its committee is per head): "
                f"choose a head from {self.runtime.model.head_names}"
            )
        self.device = self.runtime.device
        self.precision = self.runtime.precision
        self.model = self.runtime.model
        self.model_path = self.runtime.model_path
        self.runner = self.runtime.runner  # what predict() evaluates: the model or its compiled view
        self.head = self.runtime.head  # "auto": the router picks the head of every structure (results["head"])
        self.head_config = None if self.runtime.routed else self.runtime.head_config
        self.allowed_numbers = set() if self.runtime.routed else self.runtime.allowed_numbers
        self.allow_unknown_elements = allow_unknown_elements
        self.min_distance = min_distance
        self.sanity = SanityCheck(self.sanity.factor, cutoff=self.model.cutoff)
        self.spread = Spread.for_head(self.model, self.head) if uncertainty else None
        self.verlet = None
        if skin < 0:
            raise ValueError(f"skin must be >= 0, got {skin}")
        if skin > 0:
            if self.model.max_neighbors is not None:
                raise ValueError(
                    "skin > 0 needs a model without max_neighbors (the nearest-k selection changes with every step)"
                )
            self.verlet = VerletGraph(
                self.model.cutoff, skin, device=self.device, dtype=self.runtime.model_dtype, min_distance=min_distance
            )
        # with head="auto" the D3 parameters follow the head the router picks (refused for a head without them)
        self._dispersion_method = dispersion
        self._dispersions: dict = {}
        self.dispersion = None if self.runtime.routed else make_dispersion(dispersion, self.head_config)
        self.parameters.update(
            self._provenance(skin=skin, compile=bool(compile), uncertainty=getattr(self, "spread", None) is not None)
        )

    def _provenance(self, **options: Any) -> dict:
        """calc.parameters: what produced the numbers (gfm_ase.runtime.provenance), no machine paths."""
        from gfm_ase.runtime.provenance import model_provenance, package_version

        if self.dispersion is not None:
            dispersion = self.dispersion.describe()
        elif self._dispersion_method is not None:  # head="auto"
            dispersion = {"method": self._dispersion_method, "functional": "that of the head used (head='auto')"}
        else:
            dispersion = None
        if self.runtime.routed and self.runtime.router is not None:  # head="auto": which router chose the heads
            router = self.runtime.router.doc
            options = {
                "router_sha256": router.get("weights_sha256"),
                "router_json_sha256": router.get("json_sha256"),
                **options,
            }
        return {
            **model_provenance(self.model, self.model_path),
            "head": self.head,
            "level_of_theory": (
                self.head_config.level_of_theory if self.head_config is not None else "per structure (head='auto')"
            ),
            "dtype": self.precision,
            "device": self.device.type,
            "dispersion": dispersion,
            "allow_unknown_elements": self.allow_unknown_elements,
            "min_distance": self.min_distance,
            "min_distance_factor": self.sanity.factor,
            "cutoff": float(self.model.cutoff),
            "gfm_ase_version": package_version(),
            **options,
        }

    # --- metadata -------------------------------------------------------------------------------------------
    @staticmethod
    def available_heads(model: str | Path | None = None) -> dict[str, dict]:
        """Heads of a model (default: the default model) with their metadata: level of theory, code, family,
        elements, provenance (each dataset's full record plus its ``surrogate``), metrics, and the totals of
        :func:`head_summary` (``n_elements``, ``n_train``, ``surrogate_share``)."""
        doc = model_document(model)
        out = {}
        for h in doc["config"]["heads"]:
            summary = head_summary(h)
            datasets = [
                {**d, "surrogate": row["surrogate"]} for d, row in zip(h.get("datasets") or [], summary["datasets"])
            ]
            out[h["name"]] = {**h, **summary, "datasets": datasets}  # full provenance of each dataset kept
        return out

    @property
    def metadata(self) -> dict:
        """The head's metadata; with head="auto" that of the head used last (after a calculation)."""
        if self.head_config is not None:
            return self.head_config.model_dump(mode="json")
        if "head" not in self.results:
            raise RuntimeError("head='auto': the head is chosen per structure; metadata is known after a calculation")
        return self.model.head_config(self.results["head"]).model_dump(mode="json")

    # --- checks ---------------------------------------------------------------------------------------------
    def _check(self, atoms: Atoms, properties: Sequence[str]) -> str:
        """Refuse what cannot be evaluated; returns the head for ``atoms`` (the router's choice with "auto")."""
        if len(atoms) == 0:
            raise StructureError("cannot evaluate an empty Atoms object")
        if not np.isfinite(atoms.positions).all():
            raise StructureError("atoms.positions contain NaN or inf")
        if not np.isfinite(atoms.cell.array).all():
            raise StructureError("atoms.cell contains NaN or inf")
        head = self.runtime.route(atoms.numbers, atoms.pbc, atoms.cell.array).head
        msg = self.runtime.coverage_error(atoms.numbers.tolist(), head)
        if msg is not None:
            if not self.allow_unknown_elements:
                raise ValueError(msg + "; pass allow_unknown_elements=True to evaluate anyway")
            warnings.warn(msg + "; predictions for them are extrapolations", stacklevel=3)
        if self.spread is None and {"energy_std", "forces_std"} & set(properties):
            raise PropertyNotImplementedError("energy_std and forces_std need GFMCalculator(..., uncertainty=True)")
        if "stress" in properties and not self._has_volume(atoms):
            raise PropertyNotImplementedError(
                "stress needs a periodic structure with a cell of non-zero volume "
                f"(pbc={atoms.pbc.tolist()}, volume={abs(atoms.cell.volume):.3g} A^3)"
            )
        return head

    @staticmethod
    def _has_volume(atoms: Atoms) -> bool:
        return bool(atoms.pbc.any()) and abs(atoms.cell.volume) > 1e-6

    # --- evaluation -----------------------------------------------------------------------------------------
    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = cast(Atoms, self.atoms)  # the copy Calculator.calculate just stored
        head = self._check(atoms, properties)
        self.sanity.check_atoms(atoms)
        # stress comes almost for free with forces: compute it whenever the cell allows, so ASE's cache is full
        want_stress = (self._has_volume(atoms) and bool(atoms.pbc.all())) or "stress" in properties
        if self.verlet is not None:
            batch = self.verlet.batch(atoms)
        else:
            graph = graph_from_atoms(
                atoms, self.model.cutoff, max_neighbors=self.model.max_neighbors, min_distance=self.min_distance
            )
            batch = self.runtime.collate([graph]).to(self.device)
        out = to_numpy(self.runtime.evaluate(batch, forces=True, stress=want_stress, head=head))
        energy = float(out["energy"][0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "energies": out["energies"],
            "forces": out["forces"],
            "head": head,
        }
        if want_stress:
            self.results["stress"] = out["stress"][0]
        if self._dispersion_method is not None:
            self._add_dispersion(self._dispersion_for(head), atoms, want_stress, "energies" in properties)
        if self.spread is not None:
            spread = self.spread.evaluate(self.model, batch, self.precision)
            self.results["energy_std"] = float(spread["energy_std"][0])
            self.results["forces_std"] = spread["forces_std"]

    def _dispersion_for(self, head: str) -> D3Dispersion:
        """The D3 term of ``head`` (the fixed head's, or per routed head with head="auto")."""
        if self.dispersion is not None:
            return self.dispersion
        if head not in self._dispersions:
            try:
                self._dispersions[head] = make_dispersion(self._dispersion_method, self.model.head_config(head))
            except ValueError as exc:
                raise type(exc)(f"head='auto' chose head {head!r} for this structure: {exc}") from None
        return self._dispersions[head]

    def _add_dispersion(self, dispersion: D3Dispersion, atoms: Atoms, want_stress: bool, want_energies: bool) -> None:
        d = dispersion.compute(
            atoms.numbers,
            atoms.positions,
            atoms.cell.array,
            atoms.pbc,
            forces=True,
            stress=want_stress,
            energies=want_energies,
        )
        r = self.results
        r["dispersion_energy"] = d.energy
        r["energy"] = r["free_energy"] = r["energy"] + d.energy
        r["forces"] = r["forces"] + d.forces
        if want_stress:
            r["stress"] = r["stress"] + d.stress
        if want_energies:
            r["energies"] = r["energies"] + d.energies
        else:  # per-atom D3 energies cost a second pass: computed when asked for (ASE then calls again)
            del r["energies"]

    def predict(self, structure: Any) -> dict:
        """Evaluate an ``ase.Atoms`` or a pymatgen ``Structure``/``Molecule``; returns a copy of the results."""
        atoms = to_atoms(structure)
        atoms.calc = self
        self.calculate(atoms, ["energy", "forces"] + (["stress"] if self._has_volume(atoms) else []))
        return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self.results.items()}


def dataset_surrogate(dataset: dict) -> str | None:
    """The ``surrogate`` attribute of a dataset's recorded store (labels made by a surrogate model), or None."""
    value = (dataset.get("store") or {}).get("surrogate")
    return str(value) if value not in (None, "") else None


def head_summary(head: dict) -> dict:
    """What a head was trained on, from its metadata (``model.json`` -> ``config.heads[]``).

    Returns name, level_of_theory, code, family, fidelity (the model fidelity it evaluates at, None without),
    elements, n_elements (0: any element), datasets (name, n_structures, n_train, label_counts where recorded,
    surrogate: the store's ``surrogate`` attribute or None, fidelity where the model has fidelities),
    n_train (training structures over all datasets) and surrogate_share (the fraction of those that come from
    datasets with a surrogate; None without recorded training structures).
    """
    datasets = []
    for d in head.get("datasets") or []:
        row = {"name": d.get("name"), "n_structures": d.get("n_structures"), "n_train": d.get("n_train")}
        if d.get("label_counts") is not None:
            row["label_counts"] = d["label_counts"]
        row["surrogate"] = dataset_surrogate(d)
        if d.get("fidelity") is not None:  # a model with fidelities: the one the dataset trained at
            row["fidelity"] = d["fidelity"]
        datasets.append(row)
    n_train = sum(int(d["n_train"] or 0) for d in datasets)
    n_surrogate = sum(int(d["n_train"] or 0) for d in datasets if d["surrogate"] is not None)
    elements = list(head.get("elements") or [])
    return {
        "name": head.get("name"),
        "level_of_theory": head.get("level_of_theory"),
        "code": head.get("code"),
        "family": head.get("family"),
        "fidelity": head.get("fidelity"),
        "elements": elements,
        "n_elements": len(elements),
        "datasets": datasets,
        "n_train": n_train,
        "surrogate_share": (n_surrogate / n_train) if n_train else None,
    }


def to_atoms(structure: Any) -> Atoms:
    """ase.Atoms from ase.Atoms (copied) or pymatgen Structure / Molecule."""
    from ase import Atoms

    if isinstance(structure, Atoms):
        return structure.copy()
    try:
        from pymatgen.core import SiteCollection
        from pymatgen.io.ase import AseAtomsAdaptor
    except ImportError as exc:  # pragma: no cover
        raise TypeError(f"cannot convert {type(structure).__name__} to ase.Atoms (pymatgen missing)") from exc
    if not isinstance(structure, SiteCollection):
        raise TypeError(f"expected ase.Atoms or a pymatgen Structure/Molecule, got {type(structure).__name__}")
    return AseAtomsAdaptor.get_atoms(structure)
