"""The weighted multi-dataset sampler: proportions follow n_i^alpha, every step mixes, ranks draw disjoint
streams, the state resumes exactly."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from gfm_ase.pretraining.sampler import (Layout, MultiDatasetSampler, allocate_group_sizes, sampling_probabilities,
                                 systematic_counts)

SIZES = [1000, 100, 10]


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_empirical_proportions_match_alpha(alpha):
    s = MultiDatasetSampler(SIZES, alpha, batch_size=8, layout=Layout.data_parallel(1), seed=3)
    expected = np.power(np.array(SIZES, float), alpha)
    expected /= expected.sum()
    counts = np.zeros(3)
    n_steps = 3000
    for _ in range(n_steps):
        for d, _i in s.next_step()[0]:
            counts[d] += 1
    empirical = counts / counts.sum()
    # systematic allocation: the per-step count of dataset i is floor or ceil of B p_i, so the error of the mean
    # over T steps is far below the multinomial sqrt(p(1-p)/(B T)) ~ 0.003
    np.testing.assert_allclose(empirical, expected, atol=0.006)
    if alpha == 0.0:
        np.testing.assert_allclose(empirical, 1 / 3, atol=0.006)


def test_probabilities_formula_and_weights():
    np.testing.assert_allclose(sampling_probabilities([4, 16], 0.5), [1 / 3, 2 / 3])
    np.testing.assert_allclose(sampling_probabilities([4, 16], 1.0, weights=[4, 1]), [0.5, 0.5])
    np.testing.assert_allclose(sampling_probabilities([4, 16], 0.0), [0.5, 0.5])


def test_every_step_mixes_datasets_within_one_of_expectation():
    s = MultiDatasetSampler(SIZES, 0.5, batch_size=16, layout=Layout.data_parallel(1), seed=0)
    exp = 16 * s.probs
    for _ in range(500):
        c = Counter(d for d, _ in s.next_step()[0])
        for d in range(3):
            assert np.floor(exp[d]) <= c[d] <= np.ceil(exp[d])
        assert sum(c.values()) == 16


def test_systematic_counts_sum_and_bounds():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = rng.dirichlet(np.ones(5))
        c = systematic_counts(p, 13, rng)
        assert c.sum() == 13
        assert np.all(np.abs(c - 13 * p) < 1)


def test_each_dataset_is_visited_without_replacement_per_pass():
    s = MultiDatasetSampler([7, 5], 1.0, batch_size=3, layout=Layout.data_parallel(1), seed=1)
    counts = {0: np.zeros(7, int), 1: np.zeros(5, int)}
    for _ in range(40):
        for d, i in s.next_step()[0]:
            counts[d][i] += 1
        for c in counts.values():  # at any step boundary every structure was drawn k or k+1 times
            assert c.max() - c.min() <= 1
    assert counts[0].min() >= 2 and counts[1].min() >= 2


def test_ranks_get_disjoint_slices_of_the_same_global_batch():
    one = MultiDatasetSampler(SIZES, 0.5, batch_size=12, layout=Layout.data_parallel(1), seed=5)
    three = MultiDatasetSampler(SIZES, 0.5, batch_size=12, layout=Layout.data_parallel(3), seed=5)
    for _ in range(50):
        g = one.next_step()[0]
        plan = three.next_step()
        assert [len(p) for p in plan] == [4, 4, 4]
        union = [x for p in plan for x in p]
        assert len(set(union)) == len(union)  # disjoint
        assert Counter(union) == Counter(g)  # same global batch whatever the number of ranks


def test_multitask_layout_deals_each_group_only_its_datasets():
    # datasets 0, 1 -> group 0 (3 ranks), dataset 2 -> group 1 (1 rank)
    lay = Layout.multitask([[0, 1], [2]], [3, 1])
    assert lay.world_size == 4 and lay.group_ranks == [[0, 1, 2], [3]]
    mt = MultiDatasetSampler(SIZES, 0.5, batch_size=16, layout=lay, seed=2)
    dp = MultiDatasetSampler(SIZES, 0.5, batch_size=16, layout=Layout.data_parallel(1), seed=2)
    for _ in range(50):
        plan = mt.next_step()
        for r in range(3):
            assert all(d in (0, 1) for d, _ in plan[r])
        assert all(d == 2 for d, _ in plan[3])
        assert Counter(x for p in plan for x in p) == Counter(dp.next_step()[0])
    np.testing.assert_allclose(mt.global_shares(), dp.probs)


def test_state_round_trip_continues_the_same_stream():
    a = MultiDatasetSampler(SIZES, 0.5, batch_size=8, layout=Layout.data_parallel(2), seed=9)
    for _ in range(37):
        a.next_step()
    import json

    state = json.loads(json.dumps(a.state_dict()))  # the checkpoint stores it as JSON
    b = MultiDatasetSampler(SIZES, 0.5, batch_size=8, layout=Layout.data_parallel(2), seed=9)
    b.load_state_dict(state)
    for _ in range(30):
        assert a.next_step() == b.next_step()
    c = MultiDatasetSampler([1000, 100, 11], 0.5, batch_size=8, layout=Layout.data_parallel(2), seed=9)
    with pytest.raises(ValueError, match="sizes"):
        c.load_state_dict(state)


def test_group_sizes_follow_shares_with_at_least_one_rank():
    assert allocate_group_sizes([0.7, 0.2, 0.1], 10) == [7, 2, 1]
    assert allocate_group_sizes([0.98, 0.01, 0.01], 4) == [2, 1, 1]
    assert sum(allocate_group_sizes([0.5, 0.3, 0.2], 7)) == 7
    with pytest.raises(ValueError, match="at least one rank"):
        allocate_group_sizes([0.5, 0.5], 1)


def test_empty_dataset_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        MultiDatasetSampler([10, 0], 0.5, batch_size=4, layout=Layout.data_parallel(1))
