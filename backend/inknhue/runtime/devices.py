"""Choosing the compute device: CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

from contextlib import contextmanager

import torch

from ..defaults import DEVICE_CHOICES, MIN_MAX_SIZE
from ..errors import DeviceError


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def pick_device(name: str = "auto") -> torch.device:
    if name not in DEVICE_CHOICES:
        raise DeviceError(f"unknown device '{name}' (choose from {', '.join(DEVICE_CHOICES)})")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise DeviceError(f"CUDA was asked for but no usable GPU was found (torch {torch.__version__}, "
                          f"{build}); use --device cpu or install the CUDA build of torch")
    if name == "mps" and not _mps_available():
        raise DeviceError("Apple MPS was asked for but is not available on this machine; use --device cpu")
    return torch.device(name)


def free_memory(device: torch.device) -> int | None:
    """Bytes a GPU can still give this process (free on the device, plus what torch's
    allocator holds unused); None where it is not known (the CPU, MPS)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


def describe(device: torch.device) -> dict:
    """What the user should know about the device: its name and memory."""
    info = {"device": device.type, "name": "CPU", "memory_bytes": None}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, memory_bytes=int(props.total_memory))
    elif device.type == "mps":
        info.update(name="Apple GPU (MPS)")
    return info


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text or "MPS backend out of memory" in text)


@contextmanager
def out_of_memory_as_error(max_size: int):
    """Turn an allocation failure into a DeviceError that says what to do, and free the cache."""
    try:
        yield
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        smaller = max(MIN_MAX_SIZE, max_size // 2 // 32 * 32)
        advice = (f"try a smaller max size (e.g. {smaller})" if smaller < max_size else
                  "this is the smallest max size already: the page is too large for this device's memory")
        raise DeviceError(f"ran out of memory colorizing at max size {max_size}; {advice}") from exc
