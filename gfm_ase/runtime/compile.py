"""Optional ``torch.compile`` of the trunk: what :func:`gfm_ase.model.predict` evaluates, the model itself or a
view of it whose trunk is compiled (:class:`gfm_ase.model.compiled.CompiledTrunkModel`; the model is untouched)."""

from __future__ import annotations

from typing import Any

from torch import nn


def compile_runner(model: nn.Module, compile: bool | dict[str, Any] = False) -> nn.Module:
    """``model`` itself (``compile`` false) or its compiled-trunk view (True, or a dict of ``torch.compile``
    keyword arguments)."""
    if not compile:
        return model
    from gfm_ase.model.compiled import CompiledTrunkModel

    return CompiledTrunkModel(model, **(compile if isinstance(compile, dict) else {}))


__all__ = ["compile_runner"]
