"""The weighted multi-dataset sampler.

Dataset ``i`` (training split of size ``n_i``) is drawn with probability ``p_i ∝ w_i * n_i**alpha``. Each optimizer
step has a fixed global batch of ``B`` structures, allocated to datasets by systematic (stratified) sampling:
dataset ``i`` gets ``floor(B p_i)`` or ``ceil(B p_i)`` slots with expectation exactly ``B p_i``, so every step
mixes the datasets and a small dataset with ``B p_i >= 1`` appears in every step instead of being drowned.
Within a dataset, structures are visited in a fresh seeded permutation per pass (without replacement).

The plan of a step is a pure function of the seed, the step number and the per-dataset cursors, so every rank
computes the same global plan and takes its own disjoint slice, without communication. The state (cursors and the
number of steps drawn) is a small JSON-able dict saved in training checkpoints.

Layouts:

* data parallel: the global batch is shuffled and dealt round-robin to the ``world_size`` ranks;
* multi-task (head groups): group ``g`` owns a set of datasets and ``size_g`` ranks; each of its ranks draws
  ``B / world_size`` structures from the group's datasets only (probabilities renormalised within the group), so
  a group's share of the global batch is ``size_g / world_size``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_SALT_ALLOC = 0x5A17
_SALT_PERM = 0x9E12
_SALT_DEAL = 0xD3A1


def sampling_probabilities(sizes, alpha: float, weights=None) -> np.ndarray:
    """p_i ∝ w_i * n_i**alpha (empty datasets get 0)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    w = np.ones_like(sizes) if weights is None else np.asarray(weights, dtype=np.float64)
    raw = np.where(sizes > 0, w * np.power(np.maximum(sizes, 1.0), alpha), 0.0)
    if raw.sum() <= 0:
        raise ValueError("all datasets are empty")
    return raw / raw.sum()


def systematic_counts(probs: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Integer counts summing to ``total`` with E[count_i] = total * p_i and |count_i - total p_i| < 1."""
    expected = total * np.asarray(probs, dtype=np.float64)
    base = np.floor(expected).astype(np.int64)
    frac = expected - base
    rest = int(total - base.sum())
    if rest > 0:
        # systematic sampling on the fractional parts: one uniform offset, `rest` equally spaced points
        edges = np.cumsum(frac)
        edges[-1] = rest  # guard against round-off: the fractions sum to exactly `rest`
        points = rng.uniform(0.0, 1.0) + np.arange(rest)
        base += np.bincount(np.searchsorted(edges, points, side="right"), minlength=len(probs))[:len(probs)]
    return base


def allocate_group_sizes(shares, world_size: int) -> list[int]:
    """Ranks per group proportional to ``shares`` (largest remainder), at least one each."""
    shares = np.asarray(shares, dtype=np.float64)
    k = len(shares)
    if world_size < k:
        raise ValueError(f"multi-task parallelism needs at least one rank per head group: {k} groups, "
                         f"{world_size} ranks")
    sizes = np.ones(k, dtype=np.int64)
    extra = world_size - k
    if extra:
        target = shares / shares.sum() * world_size - 1.0
        target = np.maximum(target, 0.0)
        if target.sum() > 0:
            target = target / target.sum() * extra
        floor = np.floor(target).astype(np.int64)
        sizes += floor
        rest = extra - int(floor.sum())
        order = np.argsort(-(target - floor), kind="stable")
        sizes[order[:rest]] += 1
    return sizes.tolist()


@dataclass
class Layout:
    """Which rank draws from which datasets.

    ``rank_datasets[r]`` are the dataset ids rank ``r`` samples (None: data parallel, every rank shares one global
    stream); ``rank_group[r]`` its head group.
    """

    world_size: int
    rank_datasets: list[list[int]] | None = None
    rank_group: list[int] | None = None

    @staticmethod
    def data_parallel(world_size: int) -> "Layout":
        return Layout(world_size=world_size)

    @staticmethod
    def multitask(group_datasets: list[list[int]], group_sizes: list[int]) -> "Layout":
        rank_datasets, rank_group = [], []
        for g, (ds, size) in enumerate(zip(group_datasets, group_sizes)):
            rank_datasets += [list(ds)] * size
            rank_group += [g] * size
        return Layout(world_size=len(rank_datasets), rank_datasets=rank_datasets, rank_group=rank_group)


class MultiDatasetSampler:
    """Plans the global batch of each step; ``next_step()`` returns, per rank, a list of (dataset, index)."""

    def __init__(self, sizes, alpha: float, batch_size: int, layout: Layout, seed: int = 0, weights=None):
        self.sizes = [int(n) for n in sizes]
        if any(n <= 0 for n in self.sizes):
            raise ValueError(f"every dataset needs at least one training structure, sizes {self.sizes}")
        self.alpha = float(alpha)
        self.weights = None if weights is None else [float(w) for w in weights]
        self.probs = sampling_probabilities(self.sizes, alpha, weights)
        self.batch_size = int(batch_size)
        self.layout = layout
        self.seed = int(seed)
        self.cursors = [0] * len(self.sizes)
        self.steps_drawn = 0
        if layout.rank_datasets is None:
            if batch_size < layout.world_size:
                raise ValueError(f"batch_size {batch_size} is smaller than the number of ranks {layout.world_size}")
        else:
            if batch_size % layout.world_size:
                raise ValueError(f"multi-task parallelism needs batch_size ({batch_size}) divisible by the number "
                                 f"of ranks ({layout.world_size})")
            covered = sorted({d for ds in layout.rank_datasets for d in ds})
            if covered != list(range(len(self.sizes))):
                raise ValueError(f"the head groups cover datasets {covered}, expected all of 0..{len(self.sizes) - 1}")
        self._perm_cache: dict[tuple[int, int], np.ndarray] = {}

    # --- permutations ------------------------------------------------------------------------------------------
    def _perm(self, dataset: int, epoch: int) -> np.ndarray:
        key = (dataset, epoch)
        p = self._perm_cache.get(key)
        if p is None:
            rng = np.random.default_rng([self.seed, _SALT_PERM, dataset, epoch])
            p = rng.permutation(self.sizes[dataset])
            # keep the cache small: only the current pass of each dataset (and the next, while crossing)
            for k in [k for k in self._perm_cache if k[0] == dataset and k[1] < epoch]:
                del self._perm_cache[k]
            self._perm_cache[key] = p
        return p

    def _take(self, dataset: int, count: int) -> list[int]:
        out = []
        n = self.sizes[dataset]
        c = self.cursors[dataset]
        for _ in range(count):
            out.append(int(self._perm(dataset, c // n)[c % n]))
            c += 1
        self.cursors[dataset] = c
        return out

    def _draw(self, datasets: list[int], total: int, rng: np.random.Generator) -> list[tuple[int, int]]:
        p = self.probs[datasets]
        counts = systematic_counts(p / p.sum(), total, rng)
        slots = []
        for d, c in zip(datasets, counts):
            slots += [(d, i) for i in self._take(d, int(c))]
        order = rng.permutation(len(slots))
        return [slots[k] for k in order]

    # --- plan ---------------------------------------------------------------------------------------------------
    def next_step(self) -> list[list[tuple[int, int]]]:
        """Advance one step; returns ``plan[rank] = [(dataset, index), ...]`` for every rank."""
        step = self.steps_drawn
        rng = np.random.default_rng([self.seed, _SALT_ALLOC, step])
        lay = self.layout
        if lay.rank_datasets is None:
            slots = self._draw(list(range(len(self.sizes))), self.batch_size, rng)
            plan = [slots[r::lay.world_size] for r in range(lay.world_size)]
        else:
            local = self.batch_size // lay.world_size
            plan = [self._draw(ds, local, rng) for ds in lay.rank_datasets]
        self.steps_drawn += 1
        return plan

    def global_shares(self) -> np.ndarray:
        """Expected fraction of each dataset in a global batch under this layout."""
        lay = self.layout
        if lay.rank_datasets is None:
            return self.probs.copy()
        share = np.zeros(len(self.sizes))
        for ds in lay.rank_datasets:
            p = self.probs[ds]
            share[ds] += p / p.sum() / lay.world_size
        return share

    # --- state --------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"cursors": list(self.cursors), "steps_drawn": self.steps_drawn, "seed": self.seed,
                "sizes": list(self.sizes)}

    def load_state_dict(self, state: dict) -> None:
        if list(state["sizes"]) != self.sizes:
            raise ValueError(f"sampler state is for dataset sizes {state['sizes']}, these datasets have {self.sizes}")
        if int(state["seed"]) != self.seed:
            raise ValueError(f"sampler state has seed {state['seed']}, the config has {self.seed}")
        self.cursors = [int(c) for c in state["cursors"]]
        self.steps_drawn = int(state["steps_drawn"])
        self._perm_cache.clear()
