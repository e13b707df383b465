"""The weighted multi-dataset sampler.

Dataset ``i`` (training split of size ``n_i``) is drawn with probability ``p_i ∝ w_i * n_i**alpha``. Each optimizer
step has a fixed global batch of ``B`` structures, allocated to datasets by systematic (stratified) sampling:
dataset ``i`` gets ``floor(B p_i)`` or ``ceil(B p_i)`` slots with expectation exactly ``B p_i``, so every step
mixes the datasets and a small dataset with ``B p_i >= 1`` appears in every step instead of being drowned.
Within a dataset, structures are visited in a fresh seeded permutation per pass (without replacement).

The plan of a step is a pure function of the seed, the step number and the per-dataset cursors, so every rank
computes the same global plan and takes its own disjoint slice, without communication. The state (cursors and the
number of steps drawn) is a small JSON-able dict saved in training checkpoints.

The global batch does not depend on the number of ranks or on the layout; only its dealing to ranks does:

* data parallel: the (shuffled) global batch is dealt round-robin to the ``world_size`` ranks;
* multi-task (head groups): each dataset belongs to the head group of its head; the structures of a group's
  datasets are dealt round-robin to that group's ranks. Dataset shares are therefore the same as in data-parallel
  training (``p_i``); group sizes only balance the work (ranks per group ∝ the group's share).

A rank may receive no structure in a step (tiny batches or tiny group shares); it then contributes zero gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_SALT_ALLOC = 0x5A17
_SALT_PERM = 0x9E12


def sampling_probabilities(sizes: npt.ArrayLike, alpha: float, weights: npt.ArrayLike | None = None) -> np.ndarray:
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
        base += np.bincount(np.searchsorted(edges, points, side="right"), minlength=len(probs))[: len(probs)]
    return base


def allocate_group_sizes(shares: npt.ArrayLike, world_size: int) -> list[int]:
    """Ranks per group proportional to ``shares`` (largest remainder), at least one each."""
    shares = np.asarray(shares, dtype=np.float64)
    k = len(shares)
    if world_size < k:
        raise ValueError(
            f"multi-task parallelism needs at least one rank per head group: {k} groups, {world_size} ranks"
        )
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
    """How a step's global batch is dealt to ranks.

    ``dataset_group[d]`` is the head group of dataset ``d`` and ``group_ranks[g]`` the ranks of group ``g``
    (both None: data parallel, every rank takes an equal share of every dataset).
    """

    world_size: int
    dataset_group: list[int] | None = None
    group_ranks: list[list[int]] | None = None

    @staticmethod
    def data_parallel(world_size: int) -> "Layout":
        return Layout(world_size=world_size)

    @staticmethod
    def multitask(group_datasets: list[list[int]], group_sizes: list[int]) -> "Layout":
        n = sum(len(g) for g in group_datasets)
        dataset_group = [-1] * n
        for g, ds in enumerate(group_datasets):
            for d in ds:
                dataset_group[d] = g
        if -1 in dataset_group:
            raise ValueError(f"datasets {[d for d, g in enumerate(dataset_group) if g < 0]} are in no head group")
        group_ranks, start = [], 0
        for size in group_sizes:
            group_ranks.append(list(range(start, start + size)))
            start += size
        return Layout(world_size=start, dataset_group=dataset_group, group_ranks=group_ranks)


class MultiDatasetSampler:
    """Plans the global batch of each step; ``next_step()`` returns, per rank, a list of (dataset, index)."""

    def __init__(
        self,
        sizes: Sequence[int],
        alpha: float,
        batch_size: int,
        layout: Layout,
        seed: int = 0,
        weights: Sequence[float] | None = None,
    ) -> None:
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
        if layout.dataset_group is not None and len(layout.dataset_group) != len(self.sizes):
            raise ValueError(f"the layout maps {len(layout.dataset_group)} datasets, there are {len(self.sizes)}")
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

    # --- plan ---------------------------------------------------------------------------------------------------
    def next_step(self) -> list[list[tuple[int, int]]]:
        """Advance one step; returns ``plan[rank] = [(dataset, index), ...]`` for every rank."""
        rng = np.random.default_rng([self.seed, _SALT_ALLOC, self.steps_drawn])
        counts = systematic_counts(self.probs, self.batch_size, rng)
        slots = []
        for d, c in enumerate(counts):
            slots += [(d, i) for i in self._take(d, int(c))]
        slots = [slots[k] for k in rng.permutation(len(slots))]
        lay = self.layout
        if lay.dataset_group is None:
            plan = [slots[r :: lay.world_size] for r in range(lay.world_size)]
        else:
            assert lay.group_ranks is not None  # set together with dataset_group (Layout.multitask)
            plan = [[] for _ in range(lay.world_size)]
            for g, ranks in enumerate(lay.group_ranks):
                mine = [s for s in slots if lay.dataset_group[s[0]] == g]
                for k, r in enumerate(ranks):
                    plan[r] = mine[k :: len(ranks)]
        self.steps_drawn += 1
        return plan

    def global_shares(self) -> np.ndarray:
        """Expected fraction of each dataset in a global batch (the same under every layout)."""
        return self.probs.copy()

    # --- state --------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "cursors": list(self.cursors),
            "steps_drawn": self.steps_drawn,
            "seed": self.seed,
            "sizes": list(self.sizes),
        }

    def load_state_dict(self, state: dict) -> None:
        if list(state["sizes"]) != self.sizes:
            raise ValueError(f"sampler state is for dataset sizes {state['sizes']}, these datasets have {self.sizes}")
        if int(state["seed"]) != self.seed:
            raise ValueError(f"sampler state has seed {state['seed']}, the config has {self.seed}")
        self.cursors = [int(c) for c in state["cursors"]]
        self.steps_drawn = int(state["steps_drawn"])
        self._perm_cache.clear()
