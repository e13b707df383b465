"""A torch-sim ``ModelInterface`` for any gfm-ase model and head (``pip install gfm-ase[engines]``).

torch-sim (``torch-sim-atomistic``) runs batched relaxations and MD of many systems at once; a
:class:`GFMTorchSimModel` evaluates all systems of a ``SimState`` in one :class:`GraphBatch`:

* energy ``[n_systems]`` (eV), forces ``[n_atoms, 3]`` (eV/A), stress ``[n_systems, 3, 3]`` (eV/A^3);
* torch-sim's stress convention is ASE's (tension positive, ``(1/V) dE/d strain``; its cell filters and barostats
  use ``virial = -V (stress + p)``), so the stress is the model's stress as a full symmetric 3x3 tensor;
* ``SimState.cell`` holds the cell vectors as columns; the graph uses rows (ASE), so it is transposed here;
  ``SimState.pbc`` is one flag in torch-sim 0.3 and three in later releases: both are read;
* the neighbor list is built on the model's device with ``vesin.torch`` (the same library and search as the
  calculator's CPU graph, so the same pairs), per system, and the batch is assembled there;
* ``memory_scales_with = "n_atoms_x_density"``: a radial cutoff, no neighbor cap (``"n_atoms"`` for models with
  ``max_neighbors``), which torch-sim's autobatchers use to size batches.

Errors before any step: unknown head (at construction), elements the head was not trained on, stress asked for a
state without a periodic cell of non-zero volume, and geometries that fail the project's sanity check
(:mod:`gfm_ase.graph.sanity`, the calculator's rule: overlapping atoms, cells too small for their atoms). The full
check runs on the host whenever the cells change (first call, cell relaxation, NPT); at every call the pair rule
(``d_ij < factor (r_i + r_j)``) is applied on the device to the neighbor list already built there.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
import torch_sim as ts
from ase.data import chemical_symbols, covalent_radii
from torch_sim.models.interface import ModelInterface

from gfm_ase.dispersion import D3Dispersion, check_dispersion_option, make_dispersion
from gfm_ase.graph.batch import GraphBatch
from gfm_ase.graph.neighbors import StructureError
from gfm_ase.graph.sanity import DEFAULT_FACTOR, GeometryError, SanityCheck, check_factor
from gfm_ase.model.outputs import MIN_VOLUME
from gfm_ase.simulation.backend import Evaluator, load_evaluator
from gfm_ase.simulation.neighbors import device_radius_graph
from gfm_ase.units import voigt_to_full

if TYPE_CHECKING:
    from gfm_ase.model.gfm import GFMModel


class GFMTorchSimModel(ModelInterface):
    """torch-sim model of one head of a gfm-ase model.

    model, head, device, dtype ("float32", "float64" or "bfloat16": bf16 per-edge work, results in float32) and
    allow_unknown_elements and min_distance_factor (the geometry sanity check; 0 disables) as for
    :class:`gfm_ase.GFMCalculator`; ``evaluator`` instead takes an already loaded
    :class:`gfm_ase.simulation.backend.Evaluator`. compute_stress / compute_forces: what ``forward`` returns.
    dispersion: None or a DFT-D3 variant (``"d3bj"``, ...) added to every system, as for the calculator
      (:mod:`gfm_ase.dispersion`: simple-dftd3 on the host, one system after the other, float64).
    """

    def __init__(
        self,
        model: str | Path | GFMModel | None = None,
        head: str | None = None,
        *,
        device: str | torch.device = "auto",
        dtype: str = "float64",
        compute_stress: bool = True,
        compute_forces: bool = True,
        allow_unknown_elements: bool = False,
        min_distance_factor: float | None = DEFAULT_FACTOR,
        evaluator: Evaluator | None = None,
        dispersion: str | None = None,
    ) -> None:
        super().__init__()
        sanity = SanityCheck(check_factor(min_distance_factor))  # validated before the model is loaded
        check_dispersion_option(dispersion)
        self.evaluator = evaluator or load_evaluator(
            model, head, device=device, dtype=dtype, allow_unknown_elements=allow_unknown_elements
        )
        self._device = self.evaluator.device
        self._dtype = self.evaluator.dtype
        self._compute_stress = bool(compute_stress)
        self._compute_forces = bool(compute_forces)
        self._memory_scales_with = "n_atoms" if self.evaluator.max_neighbors else "n_atoms_x_density"
        self.sanity = SanityCheck(sanity.factor, cutoff=self.evaluator.cutoff)
        self._radii = torch.as_tensor(covalent_radii, dtype=torch.float64, device=self._device)
        self._checked_cells: torch.Tensor | None = None  # cells that passed the full check last time
        self.dispersion = make_dispersion(dispersion, self.evaluator.runtime.head_config)

    @property
    def head(self) -> str:
        return self.evaluator.head

    # torch-sim's validate_model_outputs switches these on where the model allows it
    @ModelInterface.compute_stress.setter
    def compute_stress(self, value: bool) -> None:
        self._compute_stress = bool(value)

    @ModelInterface.compute_forces.setter
    def compute_forces(self, value: bool) -> None:
        self._compute_forces = bool(value)

    def graph_batch(self, state: ts.SimState) -> GraphBatch:
        """The :class:`GraphBatch` of a state, built on the model's device."""
        dev, dt = self._device, self._dtype
        positions = state.positions.to(device=dev, dtype=dt)
        cell = state.cell.to(device=dev, dtype=dt).transpose(-1, -2).contiguous()  # columns -> rows (ASE)
        system_idx = state.system_idx.to(dev)
        numbers = state.atomic_numbers.to(dev).long()
        n_systems = int(cell.shape[0])
        n_atoms = torch.bincount(system_idx, minlength=n_systems)
        # one flag (torch-sim 0.3) or three (later releases)
        pbc = [bool(v) for v in torch.as_tensor(state.pbc).reshape(-1).expand(3).tolist()]
        self._check_cells(positions, numbers, cell, n_atoms, pbc)
        edges, shifts = [], []
        start = 0
        for b, n in enumerate(n_atoms.tolist()):
            if n == 0:
                raise StructureError(f"system {b} has no atoms")
            try:
                e, s, d = device_radius_graph(
                    positions[start : start + n],
                    cell[b],
                    pbc,
                    self.evaluator.cutoff,
                    max_neighbors=self.evaluator.max_neighbors,
                )
                self._check_pairs(e, d, numbers[start : start + n])
            except StructureError as exc:
                raise type(exc)(f"system {b}: {exc}") from None
            edges.append(e + start)
            shifts.append(s)
            start += n
        return GraphBatch(
            positions=positions,
            numbers=numbers,
            cell=cell,
            pbc=torch.tensor(pbc, dtype=torch.bool, device=dev).expand(n_systems, 3).clone(),
            batch=system_idx,
            n_atoms=n_atoms,
            edge_index=torch.cat(edges, dim=1),
            shifts=torch.cat(shifts).to(dt),
            head=torch.zeros(n_systems, dtype=torch.long, device=dev),
            weight=torch.ones(n_systems, dtype=dt, device=dev),
        )

    def _check_cells(
        self,
        positions: torch.Tensor,
        numbers: torch.Tensor,
        cell: torch.Tensor,
        n_atoms: torch.Tensor,
        pbc: list[bool],
    ) -> None:
        """The full sanity check (host) of every system, when the cells differ from the last checked ones."""
        if not self.sanity.enabled:
            return
        if (
            self._checked_cells is not None
            and self._checked_cells.shape == cell.shape
            and bool(torch.equal(self._checked_cells, cell))
        ):
            return
        pos, num, cel = positions.detach().cpu().numpy(), numbers.cpu().numpy(), cell.detach().cpu().numpy()
        start = 0
        for b, n in enumerate(n_atoms.tolist()):
            msg = self.sanity.problem(pos[start : start + n], num[start : start + n], cel[b], pbc)
            if msg is not None:
                self._checked_cells = None
                raise GeometryError(f"system {b}: {msg}")
            start += n
        self._checked_cells = cell.detach().clone()

    def _check_pairs(self, edge_index: torch.Tensor, d: torch.Tensor, numbers: torch.Tensor) -> None:
        """The sanity check's pair rule on the device: every pair at least factor x (r_i + r_j) apart."""
        if not self.sanity.enabled or d.numel() == 0:
            return
        zi, zj = numbers[edge_index[0]], numbers[edge_index[1]]
        limit = self.sanity.factor * (self._radii[zi] + self._radii[zj])
        ratio = d.to(limit.dtype) / limit
        k = int(torch.argmin(ratio))
        if float(ratio[k]) < 1.0:
            i, j = int(edge_index[0, k]), int(edge_index[1, k])
            what = "its own periodic image" if i == j else f"atom {j} ({chemical_symbols[int(zj[k])]})"
            raise GeometryError(
                f"overlapping atoms: atom {i} ({chemical_symbols[int(zi[k])]}) and {what} are "
                f"{float(d[k]):.3f} A apart, closer than {float(limit[k]):.3f} A "
                f"({self.sanity.factor} x sum of covalent radii); refused "
                f"(min_distance_factor={self.sanity.factor})"
            )

    def forward(self, state: ts.SimState | dict, **kwargs: Any) -> dict[str, torch.Tensor]:
        if kwargs:
            raise TypeError(f"GFMTorchSimModel.forward got unknown options {sorted(kwargs)}")
        if isinstance(state, dict):
            state = ts.SimState(**{"masses": torch.ones_like(state["positions"][:, 0]), **state})
        self.evaluator.check_numbers(state.atomic_numbers)
        batch = self.graph_batch(state)
        if self._compute_stress:
            volume = torch.linalg.det(batch.cell).abs()
            if not bool(batch.pbc.any()) or bool((volume <= MIN_VOLUME).any()):
                bad = [int(k) for k in torch.nonzero(volume <= MIN_VOLUME).flatten().tolist()]
                raise ValueError(
                    "stress needs periodic systems with a cell of non-zero volume "
                    f"(pbc={batch.pbc[0].tolist()}, systems without volume: {bad}); "
                    "use compute_stress=False for molecules"
                )
        out = self.evaluator(batch, forces=self._compute_forces, stress=self._compute_stress)
        result = {"energy": out["energy"].detach()}
        if self._compute_forces:
            result["forces"] = out["forces"].detach()
        if self._compute_stress:
            result["stress"] = voigt_to_full(out["stress"].detach())
        if self.dispersion is not None:
            self._add_dispersion(batch, result)
        return result

    def _add_dispersion(self, batch: GraphBatch, result: dict[str, torch.Tensor]) -> None:
        """Add the D3 energy, forces and stress of every system (host, float64) to ``result``."""
        pos = batch.positions.detach().cpu().double().numpy()
        cell = batch.cell.detach().cpu().double().numpy()
        numbers = batch.numbers.cpu().numpy()
        pbc = batch.pbc.cpu().numpy()
        dispersion = cast(D3Dispersion, self.dispersion)  # forward() calls this only with a D3 term
        energy, forces, stress = [], [], []
        start = 0
        for b, n in enumerate(batch.n_atoms.tolist()):
            d = dispersion.compute(
                numbers[start : start + n],
                pos[start : start + n],
                cell[b],
                pbc[b],
                forces=self._compute_forces,
                stress=self._compute_stress,
            )
            energy.append(d.energy)
            if self._compute_forces:
                forces.append(torch.as_tensor(d.forces))
            if self._compute_stress:
                stress.append(torch.as_tensor(d.stress))
            start += n

        def add(key: str, value: torch.Tensor) -> None:
            result[key] = result[key] + value.to(device=result[key].device, dtype=result[key].dtype)

        add("energy", torch.tensor(energy, dtype=torch.float64))
        if self._compute_forces:
            add("forces", torch.cat(forces))
        if self._compute_stress:
            add("stress", voigt_to_full(torch.stack(stress)))


__all__ = ["GFMTorchSimModel", "voigt_to_full"]
