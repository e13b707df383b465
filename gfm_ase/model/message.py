"""PaiNN message-step implementations, by name (``PaiNN.message_step``).

A step takes the node states ``s`` [N, F] and ``v`` [N, 3, F], the node-level ``phi`` rows [N, K] (already through
the phi MLP), the filter matrix ``w`` [K, R + 1] (weights with the bias as the last column), the per-edge
``radial`` [E, R + 1] (``[rbf * env, env]``) and ``unit`` [E, 3] vectors, and returns the updated ``s`` and ``v``:

    x_ij  = phi(s)_j * (radial_ij @ w^T)              K = 3F columns: dv_v, ds, dv_r (first layer: ds, dv_r)
    s_i  += sum_j ds_ij
    v_i  += sum_j v_j * dv_v_ij + unit_ij * dv_r_ij    (first layer: v = 0, the v_j term is skipped)

Both steps give the same numbers (float64 to rounding, tests/test_core_message_step.py). They differ in what they
keep for the backward pass:

* ``"plain"``: ordinary autograd. Each layer keeps its per-edge ``[E, 3F]`` products and the gathered ``[E, 3, F]``
  vector features alive until the backward pass, ~40 KiB per edge over four 128-feature layers in float32.
* ``"lean"``: one ``torch.autograd.Function`` that keeps only its inputs (node-level tensors, ``radial`` and
  ``unit``) and walks the edges in chunks, recomputing the per-edge products in the backward pass; per-edge memory
  is then the radial basis and the graph itself. Its backward is written in differentiable torch operations, so
  forces trained by autograd (``create_graph=True``, a double backward) work; there it runs unchunked and out of
  place, and the memory saving is only for inference (forces and stress without parameter training).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

# edges per chunk of the lean step: on a CPU small chunks keep the [C, 3, F] temporaries in cache (2,048: fastest of
# 1,024-32,768 measured on 1k- and 4k-atom Si); on a GPU large ones keep kernel launches few (docs/benchmarks.md)
EDGE_CHUNK = {"cpu": 2048}
EDGE_CHUNK_DEFAULT = 262144

MessageStep = Callable[..., tuple[torch.Tensor, torch.Tensor]]
MESSAGE_STEPS: dict[str, MessageStep] = {}


def register_message_step(name: str) -> Callable[[MessageStep], MessageStep]:
    def deco(fn: MessageStep) -> MessageStep:
        MESSAGE_STEPS[name] = fn
        return fn

    return deco


def message_step(name: str) -> MessageStep:
    try:
        return MESSAGE_STEPS[name]
    except KeyError:
        raise ValueError(f"unknown PaiNN message step {name!r}; available: {sorted(MESSAGE_STEPS)}") from None


def edge_chunk(device: torch.device) -> int:
    return EDGE_CHUNK.get(device.type, EDGE_CHUNK_DEFAULT)


@register_message_step("plain")
def plain_step(
    s: torch.Tensor,
    v: torch.Tensor,
    phi: torch.Tensor,
    w: torch.Tensor,
    radial: torch.Tensor,
    unit: torch.Tensor,
    edge_index: torch.Tensor,
    f: int,
    first: bool,
    chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    i, j = edge_index[0], edge_index[1]
    # phi is cast to the edge dtype (bf16 under autocast) at node level, then gathered
    x = torch.index_select(phi.to(unit.dtype), 0, j) * torch.nn.functional.linear(radial, w)
    if first:
        ds, dv_r = torch.split(x, f, dim=-1)
        dv = unit.unsqueeze(-1) * dv_r.unsqueeze(1)
    else:
        dv_v, ds, dv_r = torch.split(x, f, dim=-1)
        # v is gathered in the edge dtype (unit's; bf16 under autocast): a cast at node level, not per edge
        v_j = torch.index_select(v.to(unit.dtype), 0, j)
        dv = torch.addcmul(v_j * dv_v.unsqueeze(1), unit.unsqueeze(-1), dv_r.unsqueeze(1))
    # index_select / index_add rather than x[j] and index_put: their backward passes are each other (faster)
    return s.index_add(0, i, ds.to(s.dtype)), v.index_add(0, i, dv.to(v.dtype))


@register_message_step("lean")
def lean_step(
    s: torch.Tensor,
    v: torch.Tensor,
    phi: torch.Tensor,
    w: torch.Tensor,
    radial: torch.Tensor,
    unit: torch.Tensor,
    edge_index: torch.Tensor,
    f: int,
    first: bool,
    chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    if chunk is None:
        chunk = edge_chunk(unit.device)
    # under autocast the edge dtype is unit's (bf16); w and radial are cast to it explicitly inside the function,
    # which is what autocast does to the plain step's filter product
    ms, mv = _LeanMessage.apply(phi, None if first else v, w, radial, unit, edge_index, f, int(chunk))
    return s + ms, v + mv


def _gemm_dtype(edge_dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """The filter products' dtype: the edge dtype, except bf16 on a CPU, where torch's bf16 matrix products of these
    shapes ([C, 33] x [33, 384]) run much slower than float32 on the CPUs measured (docs/benchmarks.md); float32
    there, rounded to bf16 after (closer to exact than bf16 inputs)."""
    if edge_dtype == torch.bfloat16 and device.type == "cpu":
        return torch.float32
    return edge_dtype


def _add(acc: torch.Tensor, index: torch.Tensor, values: torch.Tensor, inplace: bool) -> torch.Tensor:
    """acc[index] += values (rows); out of place while a graph of the backward pass is being recorded."""
    values = values.to(acc.dtype)
    return acc.index_add_(0, index, values) if inplace else acc.index_add(0, index, values)


def _put(out: torch.Tensor | None, a: int, b: int, rows: torch.Tensor) -> torch.Tensor:
    """out[a:b] = rows; while recording (one chunk, ``out`` None) the rows are the result."""
    if out is None:
        return rows
    out[a:b] = rows
    return out


class _LeanMessage(torch.autograd.Function):
    """Summed messages ``(sum_j ds_ij, sum_j dv_ij)`` of one layer without saved per-edge intermediates."""

    @staticmethod
    def forward(
        ctx: Any,
        phi: torch.Tensor,
        v: torch.Tensor | None,
        w: torch.Tensor,
        radial: torch.Tensor,
        unit: torch.Tensor,
        edge_index: torch.Tensor,
        f: int,
        chunk: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ed, nd = unit.dtype, phi.dtype  # edge dtype (bf16 under autocast), node dtype
        n, e = phi.shape[0], unit.shape[0]
        ms = torch.zeros(n, f, dtype=nd, device=phi.device)
        mv = torch.zeros(n, 3, f, dtype=nd, device=phi.device)
        gd = _gemm_dtype(ed, unit.device)
        with torch.autocast(unit.device.type, enabled=False):
            phi_e, w_g = phi.to(ed), w.to(gd)
            v_e = None if v is None else v.to(ed)
            for a in range(0, e, chunk):
                b = min(a + chunk, e)
                ic, jc, u = edge_index[0, a:b], edge_index[1, a:b], unit[a:b]
                filt = torch.nn.functional.linear(radial[a:b].to(gd), w_g).to(ed)
                x = torch.index_select(phi_e, 0, jc) * filt
                if v_e is None:
                    ds, dv_r = torch.split(x, f, dim=-1)
                    dv = u.unsqueeze(-1) * dv_r.unsqueeze(1)
                else:
                    dv_v, ds, dv_r = torch.split(x, f, dim=-1)
                    dv = torch.addcmul(
                        torch.index_select(v_e, 0, jc) * dv_v.unsqueeze(1), u.unsqueeze(-1), dv_r.unsqueeze(1)
                    )
                ms.index_add_(0, ic, ds.to(nd))
                mv.index_add_(0, ic, dv.to(nd))
        ctx.save_for_backward(phi, v, w, radial, unit, edge_index)
        ctx.f, ctx.chunk = f, chunk
        return ms, mv

    @staticmethod
    def backward(ctx: Any, g_ms: torch.Tensor, g_mv: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        phi, v, w, radial, unit, edge_index = ctx.saved_tensors
        f = ctx.f
        need_phi, need_v, need_w, need_radial, need_unit = ctx.needs_input_grad[:5]
        # create_graph=True (training forces): record this backward for a second one, in one piece and out of place
        recording = torch.is_grad_enabled()
        chunk = unit.shape[0] if recording else ctx.chunk
        inplace = not recording
        ed, e = unit.dtype, unit.shape[0]
        first = v is None
        g_phi = torch.zeros_like(phi) if need_phi else None
        g_v = torch.zeros_like(v) if need_v else None
        g_w = (
            torch.zeros(w.shape, dtype=torch.float32 if ed != w.dtype else w.dtype, device=w.device) if need_w else None
        )
        g_radial = torch.empty_like(radial) if need_radial and not recording else None
        g_unit = torch.empty_like(unit) if need_unit and not recording else None
        gd = _gemm_dtype(ed, unit.device)
        with torch.autocast(unit.device.type, enabled=False):
            phi_e, w_g = phi.to(ed), w.to(gd)
            v_e = None if first else v.to(ed)
            for a in range(0, max(e, 1), max(chunk, 1)):
                b = min(a + chunk, e)
                ic, jc, u = edge_index[0, a:b], edge_index[1, a:b], unit[a:b]
                rad = radial[a:b].to(gd)
                filt = torch.nn.functional.linear(rad, w_g).to(ed)  # [C, K]
                phi_j = torch.index_select(phi_e, 0, jc)  # [C, K]
                g_ds = torch.index_select(g_ms, 0, ic).to(ed)  # [C, F]
                g_dv = torch.index_select(g_mv, 0, ic).to(ed)  # [C, 3, F]
                dv_r = phi_j[:, -f:] * filt[:, -f:]
                g_dv_r = (g_dv * u.unsqueeze(-1)).sum(1)
                if first:
                    g_x = torch.cat([g_ds, g_dv_r], dim=-1)
                else:
                    assert v_e is not None  # not the first layer
                    v_j = torch.index_select(v_e, 0, jc)  # [C, 3, F]
                    g_dv_v = (g_dv * v_j).sum(1)
                    if need_v:
                        assert g_v is not None
                        dv_v = phi_j[:, :f] * filt[:, :f]
                        g_v = _add(g_v, jc, g_dv * dv_v.unsqueeze(1), inplace)
                    g_x = torch.cat([g_dv_v, g_ds, g_dv_r], dim=-1)
                if need_unit:
                    g_unit = _put(g_unit, a, b, (g_dv * dv_r.unsqueeze(1)).sum(-1))
                if need_phi:
                    assert g_phi is not None
                    g_phi = _add(g_phi, jc, g_x * filt, inplace)
                if need_w or need_radial:
                    g_filt = (g_x * phi_j).to(gd)
                    if need_w:
                        assert g_w is not None
                        gw = (rad.T @ g_filt).T.to(g_w.dtype)
                        g_w = g_w.add_(gw) if inplace else g_w + gw
                    if need_radial:
                        g_radial = _put(g_radial, a, b, (g_filt @ w_g).to(radial.dtype))
        if g_w is not None:
            g_w = g_w.to(w.dtype)
        return g_phi, g_v, g_w, g_radial, g_unit, None, None, None
