"""torch.distributed set-up and the collectives the trainer needs.

Rank discovery, in ``launcher: auto`` order:

1. torchrun (or ``srun torchrun``): ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT`` are
   set; ``init_method="env://"``.
2. MPI (``mpiexec``/``mpirun``, or ``srun --mpi=pmi2|pmix`` with an MPI-enabled mpi4py): rank and size from
   ``mpi4py``; rank 0 picks the rendezvous address (``MASTER_ADDR`` if set, else its host's address) and a free
   port (``MASTER_PORT`` if set) and broadcasts them over MPI; every rank then joins ``tcp://addr:port``.
3. otherwise a single process (no process group).

Backend: NCCL when training on CUDA, gloo on CPU (``parallel.backend`` overrides).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

if TYPE_CHECKING:
    from gfm_ase.model.gfm import GFMModel

MPI_ENV = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")


class DistributedError(RuntimeError):
    pass


@dataclass
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None
    launcher: str = "none"

    @property
    def active(self) -> bool:
        return self.world_size > 1 and dist.is_available() and dist.is_initialized()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.active:
            if self.backend == "nccl":
                dist.barrier(device_ids=[self.device.index or 0])
            else:
                dist.barrier()

    def all_reduce_sum(self, t: torch.Tensor, group: dist.ProcessGroup | None = None) -> torch.Tensor:
        """In-place SUM over the world (or ``group``); a no-op in one process."""
        if self.active:
            dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)
        return t

    def all_gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        if not self.active:
            return [t]
        out = [torch.empty_like(t) for _ in range(self.world_size)]
        dist.all_gather(out, t)
        return out

    def broadcast_json(self, obj: Any, src: int = 0) -> Any:
        """Broadcast a JSON-able object from ``src`` (no pickle)."""
        if not self.active:
            return obj
        dev = self.device if self.backend == "nccl" else torch.device("cpu")
        if self.rank == src:
            data = torch.tensor(list(json.dumps(obj).encode()), dtype=torch.uint8, device=dev)
            n = torch.tensor([data.numel()], dtype=torch.int64, device=dev)
        else:
            n = torch.zeros(1, dtype=torch.int64, device=dev)
        dist.broadcast(n, src)
        if self.rank != src:
            data = torch.empty(int(n.item()), dtype=torch.uint8, device=dev)
        dist.broadcast(data, src)
        return json.loads(bytes(data.cpu().tolist()).decode())

    def shutdown(self) -> None:
        if self.active:
            dist.destroy_process_group()


def _rank_device(device: str, local_rank: int) -> torch.device:
    """The runtime's device choice (:func:`gfm_ase.runtime.resolve_device`), with a bare ``cuda`` pinned to this
    rank's GPU (``local_rank`` modulo the GPUs of the node)."""
    from gfm_ase.runtime.device import DeviceError, resolve_device

    try:
        dev = resolve_device(device)
    except DeviceError as exc:
        raise DistributedError(str(exc)) from None
    if dev.type == "cuda":
        if dev.index is None:
            dev = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    return dev


def detect_launcher(env: Mapping[str, str] = os.environ) -> str:
    if "RANK" in env and "WORLD_SIZE" in env and "MASTER_ADDR" in env:
        return "torchrun"
    if any(k in env for k in MPI_ENV):
        return "mpi"
    return "none"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _host_address() -> str:
    try:
        return socket.gethostbyname(socket.getfqdn())
    except OSError:
        return "127.0.0.1"


def setup_distributed(
    launcher: str = "auto", backend: str = "auto", device: str = "auto", timeout_s: float = 1800.0
) -> DistEnv:
    """Discover ranks, pick the device and backend, and initialise the default process group."""
    if launcher == "auto":
        launcher = detect_launcher()
        if launcher == "none" and int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in os.environ:
            raise DistributedError(
                "srun started several tasks but neither a torchrun nor an MPI environment was found: use "
                "`srun --mpi=pmix python -m gfm_ase.cli pretrain ...` or `srun torchrun ...` (pretraining/launch/)"
            )
    timeout = _dt.timedelta(seconds=timeout_s)
    if launcher == "torchrun":
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        init_method: str | None = "env://"
    elif launcher == "mpi":
        try:
            from mpi4py import MPI
        except ImportError as exc:
            raise DistributedError(
                "an MPI launch was detected but mpi4py is not installed (pip install mpi4py mpich)"
            ) from exc
        comm = MPI.COMM_WORLD
        rank, world = comm.Get_rank(), comm.Get_size()
        local_rank = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()
        address: tuple[str, int] | None = None
        if world > 1:
            if rank == 0:
                address = (
                    os.environ.get("MASTER_ADDR") or _host_address(),
                    int(os.environ.get("MASTER_PORT") or _free_port()),
                )
            address = comm.bcast(address, root=0)
        init_method = f"tcp://{address[0]}:{address[1]}" if address else None
    elif launcher == "none":
        rank, world, local_rank, init_method = 0, 1, 0, None
    else:
        raise DistributedError(f"unknown launcher {launcher!r}")
    dev = _rank_device(device, local_rank)
    if backend == "auto":
        backend = "nccl" if dev.type == "cuda" else "gloo"
    if backend == "nccl" and dev.type != "cuda":
        raise DistributedError("the nccl backend needs CUDA devices; use gloo on CPU")
    env = DistEnv(
        rank=rank,
        world_size=world,
        local_rank=local_rank,
        device=dev,
        backend=backend if world > 1 else None,
        launcher=launcher,
    )
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend=backend,
            timeout=timeout,
            rank=rank,
            world_size=world,
            init_method=init_method,
            device_id=dev if backend == "nccl" else None,  # None: the default
        )
    return env


# --- head groups ------------------------------------------------------------------------------------------------
class HeadGroups:
    """Multi-task layout: ``groups[g]`` = head names, ``ranks[g]`` = global ranks of group g.

    ``process_groups[g]`` is the torch process group of group g (created collectively on every rank, None for a
    single-rank group or in a single process).
    """

    def __init__(self, env: DistEnv, groups: list[list[str]], sizes: list[int]) -> None:
        if sum(sizes) != env.world_size:
            raise DistributedError(f"head-group sizes {sizes} do not add up to the {env.world_size} ranks")
        self.groups = [list(g) for g in groups]
        self.ranks: list[list[int]] = []
        start = 0
        for s in sizes:
            self.ranks.append(list(range(start, start + s)))
            start += s
        self.process_groups: list[dist.ProcessGroup | None] = []
        for rs in self.ranks:
            pg = dist.new_group(rs) if env.active else None  # every rank must call new_group for every group
            self.process_groups.append(pg if len(rs) > 1 else None)
        self.my_group = next(g for g, rs in enumerate(self.ranks) if env.rank in rs)

    @property
    def my_heads(self) -> list[str]:
        return self.groups[self.my_group]

    def group_of_head(self, head: str) -> int:
        return next(g for g, hs in enumerate(self.groups) if head in hs)

    def leader_of_head(self, head: str) -> int:
        return self.ranks[self.group_of_head(head)][0]


# --- gradients ----------------------------------------------------------------------------------------------------
def _flat_sum(params: list[torch.Tensor], env: DistEnv, group: dist.ProcessGroup | None) -> None:
    if not params:
        return
    grads: list[torch.Tensor] = []
    for p in params:
        assert p.grad is not None  # sync_gradients zero-fills missing gradients first
        grads.append(p.grad)
    flat = torch.cat([g.reshape(-1) for g in grads])
    env.all_reduce_sum(flat, group=group)
    off = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[off : off + n].view_as(g))
        off += n


def sync_gradients(model: GFMModel, env: DistEnv, head_groups: HeadGroups | None = None) -> None:
    """Zero-fill missing gradients, then SUM them: the trunk over all ranks, a head over the ranks that hold it.

    Every parameter ends up with a gradient (zeros for a head absent from the batch), so the optimizer treats
    parameters identically whatever the layout. With the loss normalised by global counts (gfm_ase.pretraining.loss),
    the sum is the gradient of the global batch's loss.
    """
    for p in model.parameters():
        if p.requires_grad and p.grad is None:
            p.grad = torch.zeros_like(p)
    if not env.active:
        return
    if head_groups is None:
        _flat_sum([p for p in model.parameters() if p.requires_grad], env, None)
        return
    _flat_sum([p for p in model.trunk.parameters() if p.requires_grad], env, None)
    pg = head_groups.process_groups[head_groups.my_group]
    if pg is not None:
        _flat_sum([p for h in head_groups.my_heads for p in model.heads[h].parameters() if p.requires_grad], env, pg)


def gather_to_rank0(
    local: dict[str, torch.Tensor], owner: dict[str, int], template: dict[str, tuple], env: DistEnv
) -> dict[str, torch.Tensor] | None:
    """Collect named tensors on rank 0. ``owner[name]`` is the rank holding ``name`` (its ``local`` has it);
    ``template[name] = (shape, dtype)``. Returns the full dict on rank 0 and None elsewhere."""
    if not env.active:
        return dict(local)
    owners = sorted({r for r in owner.values() if r != 0})
    out = {n: t for n, t in local.items() if owner.get(n) == 0} if env.rank == 0 else {}  # filled on rank 0 only
    dev = env.device if env.backend == "nccl" else torch.device("cpu")
    for r in owners:
        names = sorted(n for n, o in owner.items() if o == r)
        by_dtype: dict[torch.dtype, list[str]] = {}
        for n in names:
            by_dtype.setdefault(template[n][1], []).append(n)
        for dt, ns in sorted(by_dtype.items(), key=lambda kv: str(kv[0])):
            sizes = [int(torch.Size(template[n][0]).numel()) for n in ns]
            if env.rank == r:
                flat = torch.cat([local[n].detach().reshape(-1).to(device=dev, dtype=dt) for n in ns])
                dist.send(flat, dst=0)
            elif env.rank == 0:
                flat = torch.empty(sum(sizes), dtype=dt, device=dev)
                dist.recv(flat, src=r)
                off = 0
                for n, k in zip(ns, sizes):
                    out[n] = flat[off : off + k].view(template[n][0]).cpu().clone()
                    off += k
    return out if env.rank == 0 else None
