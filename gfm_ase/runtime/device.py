"""Device resolution: the one place that turns ``"auto"`` into a device."""

from __future__ import annotations

import torch


class DeviceError(ValueError):
    """A device that is not a device name, or one this machine does not have."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; anything else as ``torch.device`` reads it.

    Raises :class:`DeviceError` for a name torch does not know and for a CUDA device this machine lacks (instead
    of torch's assertion deep inside the first ``.to()``).
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"unknown device {device!r} (use auto, cpu, cuda or cuda:N): {exc}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {str(device)!r} requested but CUDA is not available here (torch "
                f"{torch.__version__}); use device 'cpu' or 'auto'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {str(device)!r} requested but this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    return dev


__all__ = ["DeviceError", "resolve_device"]
