"""The training DataLoader: each step's sampler plan, this rank's part of it, built into one collated batch."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterator

import torch

from gfm_ase.graph.batch import AtomicGraph, GraphBatch, collate
from gfm_ase.pretraining.data import DatasetSplits
from gfm_ase.pretraining.sampler import MultiDatasetSampler


class StepData(torch.utils.data.Dataset):
    """(dataset, index) -> graph with the dataset's local head index, fidelity index (-1: its head's) and loss
    weight."""

    def __init__(self, datasets: list[DatasetSplits], local_head: list[int], fidelity: list[int]) -> None:
        self.datasets = datasets
        self.local_head = local_head
        self.fidelity = fidelity

    def __len__(self) -> int:
        return sum(len(d.train) for d in self.datasets)

    def __getitem__(self, key: tuple[int, int]) -> AtomicGraph:
        d, i = key
        g = self.datasets[d].train[i]
        return dataclasses.replace(
            g, head=self.local_head[d], fidelity=self.fidelity[d], weight=g.weight * self.datasets[d].loss_weight
        )


class Collate:
    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype

    def __call__(self, graphs: list[AtomicGraph]) -> GraphBatch | None:
        return collate(graphs, dtype=self.dtype) if graphs else None  # a rank may get no structure in a step


class PlanSampler:
    """batch_sampler for the DataLoader: the rank's part of each step's plan; records the sampler state after each
    step so that the state saved with a checkpoint is that of the consumed (not prefetched) steps."""

    def __init__(self, sampler: MultiDatasetSampler, rank: int, n_steps: int, states: collections.deque) -> None:
        self.sampler, self.rank, self.n_steps, self.states = sampler, rank, n_steps, states

    def __len__(self) -> int:
        return self.n_steps

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for _ in range(self.n_steps):
            plan = self.sampler.next_step()
            self.states.append(self.sampler.state_dict())
            yield plan[self.rank]


def step_loader(
    datasets: list[DatasetSplits],
    dataset_local_head: list[int],
    dataset_fidelity: list[int],
    sampler: MultiDatasetSampler,
    rank: int,
    n_steps: int,
    states: collections.deque,
    dtype: torch.dtype,
    device: torch.device,
    num_workers: int,
) -> torch.utils.data.DataLoader:
    """``n_steps`` batches of this rank (None where it gets no structure); ``states`` receives the sampler state
    after each step's plan."""
    return torch.utils.data.DataLoader(
        StepData(datasets, dataset_local_head, dataset_fidelity),
        batch_sampler=PlanSampler(sampler, rank, n_steps, states),
        collate_fn=Collate(dtype),
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
        prefetch_factor=2 if num_workers > 0 else None,
    )
