"""Scale-out: each rank screens a disjoint shard of the input units.

Ranks are found from the usual launcher variables (torchrun: ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; MPI:
``OMPI_COMM_WORLD_*``, ``PMI_RANK``/``PMI_SIZE``, ``MPI_LOCALRANKID``; Slurm: ``SLURM_PROCID``/``SLURM_NTASKS``) or
given explicitly. Rank r takes the units whose global number is ``r`` modulo the world size. No communication
backend is needed: ranks share the output's parts folder (a shared filesystem), each marks its shard finished with
a file ``done-w{world}-r{rank}``, and rank 0 merges once all markers of the current world size are there (a rank
whose shard was already complete in an earlier run of the same size finds nothing to do and marks it again).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

_RANK_VARS = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID")
_SIZE_VARS = ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS")
_LOCAL_VARS = ("LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID")


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    def __post_init__(self) -> None:
        if self.world < 1 or not 0 <= self.rank < self.world:
            raise ValueError(f"invalid shard: rank {self.rank} of world size {self.world}")

    def take(self, units: Iterable) -> Iterator:
        """The units of this rank (``unit.index % world == rank``)."""
        for u in units:
            if u.index % self.world == self.rank:
                yield u


def _env_int(names: Iterable[str]) -> int | None:
    for n in names:
        v = os.environ.get(n)
        if v not in (None, ""):
            try:
                return int(v)
            except ValueError:
                continue
    return None


def detect_shard(rank: int | None = None, world: int | None = None) -> Shard:
    """Explicit values, else the launcher's environment, else a single process."""
    r = rank if rank is not None else _env_int(_RANK_VARS)
    w = world if world is not None else _env_int(_SIZE_VARS)
    local = _env_int(_LOCAL_VARS)
    if w is None or r is None:
        if (r is None) != (w is None) and (rank is not None or world is not None):
            raise ValueError("give both the rank and the world size")
        return Shard(0, 1, 0)
    return Shard(int(r), int(w), int(local) if local is not None else 0)


def marker(directory: Path, shard: Shard) -> Path:
    return directory / f"done-w{shard.world}-r{shard.rank}"


def mark_done(directory: Path, shard: Shard) -> None:
    p = marker(directory, shard)
    p.write_text(f"{time.time()}\n")


def wait_for_ranks(
    directory: Path,
    shard: Shard,
    timeout: float | None = None,
    poll: float = 2.0,
    log: Callable[[str], None] | None = None,
) -> None:
    """Block (rank 0) until every rank of this world size has marked its shard done."""
    t0 = time.monotonic()
    last = -1
    while True:
        missing = [r for r in range(shard.world) if not marker(directory, Shard(r, shard.world)).exists()]
        if not missing:
            return
        if log is not None and len(missing) != last:
            log(f"waiting for ranks {missing[:16]}{' ...' if len(missing) > 16 else ''} to finish")
            last = len(missing)
        if timeout is not None and time.monotonic() - t0 > timeout:
            raise TimeoutError(
                f"ranks {missing} did not finish within {timeout:.0f} s; rerun the same command to resume them"
            )
        time.sleep(poll)


__all__ = ["Shard", "detect_shard", "mark_done", "wait_for_ranks", "marker"]
