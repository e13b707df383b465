"""Helpers every benchmark shares: the machine line, peak/current memory, device synchronisation, the default model.

Memory on a CPU is the process's resident set from ``/proc/self/status`` (peak ``VmHWM``, reset by writing 5 to
``/proc/self/clear_refs``; ``ru_maxrss`` where that is missing); on a GPU the CUDA caching allocator's counters.
"""
from __future__ import annotations

import os
import platform

import torch


def reset_peak(device: torch.device) -> None:
    """Start a new peak-memory window (CUDA peak allocation, or the process's peak RSS on Linux)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # Linux: writing 5 to clear_refs resets the peak RSS (VmHWM)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _proc_status_mib(field: str) -> float | None:
    """A memory field of /proc/self/status (Linux) in MiB, or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return float(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_mib(device: torch.device) -> float:
    """Peak memory since the last :func:`reset_peak` (MiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = _proc_status_mib("VmHWM")
    if peak is None:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return peak


def current_mib(device: torch.device) -> float:
    """Memory in use now (MiB): CUDA allocation, or the process's RSS."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    rss = _proc_status_mib("VmRSS")
    return 0.0 if rss is None else rss


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so that wall clocks measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def default_model():
    """The benchmarks' default model: a randomly initialised default-size PaiNN (seed 0; speed does not depend on
    training) with one head ``pbe``."""
    from gfm_ase.config import HeadConfig, ModelConfig
    from gfm_ase.model import GFMModel

    torch.manual_seed(0)
    return GFMModel(ModelConfig(name="painn-default-random", heads=[HeadConfig(name="pbe")])).eval()


def machine(device) -> str:
    """One line naming the CPU, its logical core count, torch, its thread count and the GPU when there is one."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    s = f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, threads {torch.get_num_threads()}"
    if device.type == "cuda":
        s += f", GPU {torch.cuda.get_device_name(device)}"
    return s
