"""What a training checkpoint holds and how a run gets it back: the weights, AdamW moments and EMA of every rank
gathered on rank 0, the per-rank RNG states, the step's metadata; and their restoration on resume. The files
themselves (atomic, checksummed, no pickle) are gfm_ase.pretraining.state's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from gfm_ase.checkpoint import CheckpointError
from gfm_ase.config import ModelConfig
from gfm_ase.model.gfm import GFMModel
from gfm_ase.pretraining.distributed import DistEnv, gather_to_rank0
from gfm_ase.pretraining.ema import EMA
from gfm_ase.pretraining.errors import TrainingError


def local_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, ema: EMA | None) -> dict[str, torch.Tensor]:
    """This rank's weights (``model.``), AdamW moments (``optim.exp_avg.``, ``optim.exp_avg_sq.``) and EMA
    (``ema.``), keyed by parameter name."""
    out = {}
    for n, p in model.named_parameters():
        out[f"model.{n}"] = p.detach()
        st = optimizer.state.get(p)
        if st:
            out[f"optim.exp_avg.{n}"] = st["exp_avg"]
            out[f"optim.exp_avg_sq.{n}"] = st["exp_avg_sq"]
        if ema is not None:
            out[f"ema.{n}"] = ema.shadow[n]
    return out


def gather_state(
    local: dict[str, torch.Tensor],
    param_meta: dict[str, tuple],
    frozen: set[str],
    with_ema: bool,
    owner: Callable[[str], int],
    env: DistEnv,
) -> dict[str, torch.Tensor] | None:
    """Every parameter's tensors of the full model on rank 0 (None elsewhere). ``param_meta``: {name: (shape,
    dtype)} of the full model; ``owner(name)``: the rank that holds it; frozen parameters have no moments."""
    kinds = ["model"] + (["ema"] if with_ema else [])
    if any(k.startswith("optim.") for k in local):
        kinds += ["optim.exp_avg", "optim.exp_avg_sq"]
    owners, template = {}, {}
    for n, meta in param_meta.items():
        for k in kinds:
            if k.startswith("optim.") and n in frozen:
                continue
            owners[f"{k}.{n}"] = owner(n)
            template[f"{k}.{n}"] = meta
    return gather_to_rank0(local, owners, template, env)


def rng_tensors(env: DistEnv, device: torch.device) -> dict[str, torch.Tensor]:
    """The torch (and CUDA) RNG state of every rank (``rng.torch.<rank>``, ``rng.cuda.<rank>``)."""
    out = {}
    dev = device if env.backend == "nccl" else torch.device("cpu")
    for r, t in enumerate(env.all_gather(torch.get_rng_state().to(dev))):
        out[f"rng.torch.{r}"] = t.cpu()
    if device.type == "cuda":
        for r, t in enumerate(env.all_gather(torch.cuda.get_rng_state(device).to(dev))):
            out[f"rng.cuda.{r}"] = t.cpu()
    return out


def restore_rng(tensors: dict[str, torch.Tensor], rank: int, device: torch.device) -> None:
    key = f"rng.torch.{rank}"
    if key in tensors:
        torch.set_rng_state(tensors[key])
    if device.type == "cuda" and f"rng.cuda.{rank}" in tensors:
        torch.cuda.set_rng_state(tensors[f"rng.cuda.{rank}"], device)


def adam_step(optimizer: torch.optim.Optimizer) -> int:
    """AdamW's step count (the same for every parameter it has state for; 0 before the first step)."""
    for st in optimizer.state.values():
        return int(float(st["step"]))
    return 0


def restore_weights(
    model: torch.nn.Module, weights: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype, path: Path
) -> None:
    """This rank's parameters from the checkpoint's full-model weights."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n not in weights or tuple(weights[n].shape) != tuple(p.shape):
                raise CheckpointError(f"{path}: weights lack {n} or have another shape")
            p.copy_(weights[n].to(device=device, dtype=dtype))


def restore_optimizer(
    optimizer: torch.optim.Optimizer,
    model: torch.nn.Module,
    trainable: set[str],
    tensors: dict[str, torch.Tensor],
    step: int,
    device: torch.device,
    path: Path,
) -> None:
    """AdamW's moments of this rank's trainable parameters at Adam step ``step`` (nothing before the first)."""
    if step <= 0:
        return
    for n, p in model.named_parameters():
        if n not in trainable:
            continue
        try:
            m, v = tensors[f"optim.exp_avg.{n}"], tensors[f"optim.exp_avg_sq.{n}"]
        except KeyError as exc:
            raise CheckpointError(f"{path}: optimizer state lacks {exc}") from None
        optimizer.state[p] = {
            "step": torch.tensor(float(step), dtype=torch.get_default_dtype()),
            "exp_avg": m.to(device=device, dtype=p.dtype).clone(),
            "exp_avg_sq": v.to(device=device, dtype=p.dtype).clone(),
        }


def restore_ema(
    ema: EMA | None, tensors: dict[str, torch.Tensor], num_updates: int, device: torch.device, dtype: torch.dtype
) -> None:
    if ema is not None:
        ema.load(
            {n[4:]: t.to(device=device, dtype=dtype) for n, t in tensors.items() if n.startswith("ema.")}, num_updates
        )


def model_from_state(config: ModelConfig, state: dict[str, torch.Tensor], prefix: str, dtype: torch.dtype) -> GFMModel:
    """A CPU model of ``config`` with the gathered tensors under ``prefix`` (``model.`` or ``ema.``)."""
    model = GFMModel(config).to(dtype)
    sd = {n[len(prefix) :]: t for n, t in state.items() if n.startswith(prefix)}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise TrainingError(f"gathered state does not match the model: missing {missing}, unexpected {unexpected}")
    return model
