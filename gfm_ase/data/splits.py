"""Deterministic train/val/test splits, by structure or by group (no group ever spans two splits)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

SPLIT_NAMES = ("train", "val", "test")


def _check_fractions(fractions: Sequence[float] | np.ndarray) -> np.ndarray:
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.shape != (3,) or (fr < 0).any() or abs(fr.sum() - 1.0) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {list(fractions)}")
    return fr


def _sizes(n: int, fr: np.ndarray) -> np.ndarray:
    """Largest-remainder rounding: sizes sum to n exactly."""
    raw = fr * n
    sizes = np.floor(raw).astype(np.int64)
    rest = n - sizes.sum()
    order = np.argsort(-(raw - sizes), kind="stable")
    sizes[order[:rest]] += 1
    return sizes


def split_groups(
    groups: Sequence[str] | np.ndarray, fractions: Sequence[float] | np.ndarray = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, np.ndarray]:
    """Split structure indices so that every group lands in exactly one split.

    Empty group tags ("") count as one group per structure. Groups are shuffled with ``seed``, then taken largest
    first (a stable sort, so equal-sized groups stay in random order) and each is given to the split furthest below
    its target structure count; split sizes follow ``fractions`` as closely as group sizes allow. Every split with
    a non-zero fraction gets at least one group when there are enough groups.
    """
    fr = _check_fractions(fractions)
    groups = np.asarray(groups, dtype=object)
    n = len(groups)
    keys = np.array([g if g != "" else f"\x00{i}" for i, g in enumerate(groups)], dtype=object)
    uniq, inverse = np.unique(keys.astype(str), return_inverse=True)
    sizes = np.bincount(inverse, minlength=len(uniq))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    order = order[np.argsort(-sizes[order], kind="stable")]
    target = fr * n
    have = np.zeros(3)
    assign = np.empty(len(uniq), dtype=np.int64)
    for g in order:
        k = int(np.argmax(np.where(fr > 0, target - have, -np.inf)))
        assign[g] = k
        have[k] += sizes[g]
    active = [k for k in range(3) if fr[k] > 0]
    for k in active:  # a split left empty takes the smallest group of the split with the most groups
        if not (assign == k).any():
            donors = [j for j in active if (assign == j).sum() > 1]
            if not donors:
                break
            j = max(donors, key=lambda d: (assign == d).sum())
            members = np.flatnonzero(assign == j)
            assign[members[np.argmin(sizes[members])]] = k
    split_of = assign[inverse]
    return {name: np.flatnonzero(split_of == k) for k, name in enumerate(SPLIT_NAMES)}


def split_indices(
    store: Any, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, by: str = "structure"
) -> dict[str, np.ndarray]:
    """Indices (sorted int64 arrays) of the "train", "val" and "test" splits of ``store``.

    ``by="structure"``: a seeded permutation cut at the fractions. ``by="group"``: whole groups (the store's
    ``group`` tag: a trajectory, a material id, ...) go to one split, see :func:`split_groups`.
    ``store`` may also be an int (number of structures, for ``by="structure"``) or a sequence of group tags.
    """
    fr = _check_fractions(fractions)
    if by == "group":
        groups = store.groups if hasattr(store, "groups") else store
        return split_groups(groups, fr, seed)
    if by != "structure":
        raise ValueError(f"by must be 'structure' or 'group', got {by!r}")
    n = int(store) if isinstance(store, (int, np.integer)) else len(store)
    perm = np.random.default_rng(seed).permutation(n)
    sizes = _sizes(n, fr)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return {name: np.sort(perm[bounds[k] : bounds[k + 1]]) for k, name in enumerate(SPLIT_NAMES)}


__all__ = ["SPLIT_NAMES", "split_groups", "split_indices"]
