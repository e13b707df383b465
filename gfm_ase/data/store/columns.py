"""Whole-store views of a :class:`~gfm_ase.data.store.Store`: label columns over all structures, element counts,
label coverage. Cheap for the per-structure columns (kept in memory); the per-atom ones are read whole."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from gfm_ase.data.store.shard import Shard


class StoreColumns:
    """Column views over the shards of a store (mixed into :class:`~gfm_ase.data.store.Store`)."""

    _shards: list[Shard]
    _len: int
    _n_atoms: np.ndarray
    _groups: np.ndarray | None

    def _cat(self, name: str) -> np.ndarray:
        return np.concatenate([s.cols[name] for s in self._shards])

    @property
    def n_atoms(self) -> np.ndarray:
        """Atoms per structure, int64 [S]."""
        return self._n_atoms

    @property
    def energies(self) -> np.ndarray:
        """Total energies [S] in eV, NaN where missing."""
        return self._cat("energy")

    @property
    def stresses(self) -> np.ndarray:
        return self._cat("stress")

    @property
    def cells(self) -> np.ndarray:
        return self._cat("cell")

    @property
    def pbcs(self) -> np.ndarray:
        return self._cat("pbc")

    @property
    def groups(self) -> np.ndarray:
        """Group tag of every structure (object array of str)."""
        if self._groups is None:
            self._groups = np.concatenate([s.string_column("group") for s in self._shards])
        return self._groups

    @property
    def ids(self) -> np.ndarray:
        return np.concatenate([s.string_column("id") for s in self._shards])

    def numbers_all(self) -> np.ndarray:
        """Concatenated atomic numbers of all structures (int64 [N])."""
        return np.concatenate([s.full_column("numbers") for s in self._shards]).astype(np.int64)

    def forces_all(self) -> np.ndarray:
        """Concatenated forces [N, 3] (NaN rows for structures without forces)."""
        return np.concatenate([s.full_column("forces") for s in self._shards])

    def composition(
        self, indices: Sequence[int] | np.ndarray | None = None, elements: Sequence[int] | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Element counts: returns (atomic numbers [K], counts [len(indices), K])."""
        nums = self.numbers_all()
        struct_of_atom = np.repeat(np.arange(self._len), self._n_atoms)
        zs = np.unique(nums) if elements is None else np.asarray(elements, dtype=np.int64)
        col = np.searchsorted(zs, nums)
        ok = (col < len(zs)) & (zs[np.minimum(col, len(zs) - 1)] == nums)
        counts = np.zeros((self._len, len(zs)), dtype=np.int64)
        np.add.at(counts, (struct_of_atom[ok], col[ok]), 1)
        if indices is not None:
            counts = counts[np.asarray(indices, dtype=np.int64)]
        return zs, counts

    @property
    def atomic_numbers(self) -> list[int]:
        zs: set[int] = set()
        for s in self._shards:
            zs.update(int(z) for z in s.attrs.get("elements", []))
        return sorted(zs)

    @property
    def elements(self) -> list[str]:
        """Chemical symbols present in the store, by atomic number."""
        from ase.data import chemical_symbols

        return [chemical_symbols[z] for z in self.atomic_numbers]

    def label_counts(self) -> dict[str, int]:
        """How many structures carry each label."""
        return {
            "energy": int(np.isfinite(self._cat("energy")).sum()),
            "forces": int(self._cat("has_forces").sum()),
            "stress": int(np.isfinite(self._cat("stress")).all(axis=1).sum()),
            "charge": int(np.isfinite(self._cat("charge")).sum()),
            "spin": int(np.isfinite(self._cat("spin")).sum()),
            "magmoms": int(self._cat("has_magmoms").sum()),
        }
