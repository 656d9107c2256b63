"""How the engine runs its networks: numeric precision, tensor layout, row bands.

One frozen `EngineOptions` is given to `Engine`; `resolve` turns it into the dtypes and
layout for a device, with the reason for each choice (logged, and in the server's hello).

Precisions:
- `reference`: float32 everywhere, the numbers of the parity fixtures (tests/test_parity.py).
- `published`: as the published app runs on this device: the VAE in bfloat16 on CUDA,
  float32 elsewhere; the shading generator in float32 everywhere.
- `fast` (the default): the VAE in bfloat16 wherever the device computes it natively
  (CUDA; CPUs with AVX512-BF16 or AMX, through oneDNN), otherwise as `published`. On a
  CPU with AVX512-BF16 the VAE's convolutions run about twice as fast. The shading
  generator stays float32: in bfloat16 it gains little on the CPU and its deviation is
  amplified by the VAE (benchmarks/bench_page.py --precision prints both deviations).

bfloat16 VAE output differs from float32 by a few levels (what the published app's own
CUDA results differ by from its CPU results); the deviations on the parity weights and on
full-size random weights are measured by benchmarks/bench_page.py and bounded by
tests/test_engine_options.py.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch

from ..defaults import PRECISIONS
from ..errors import DeviceError
from ..networks.banded import Banding


@dataclass(frozen=True)
class EngineOptions:
    precision: str = "fast"
    banding: Banding = field(default_factory=Banding)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise DeviceError(f"unknown precision '{self.precision}' (choose from {', '.join(PRECISIONS)})")


def from_args(args) -> EngineOptions:
    """The options a command line asked for (`--precision`; commands without it get the default)."""
    return EngineOptions(precision=getattr(args, "precision", "fast"))


@dataclass(frozen=True)
class Resolved:
    """The options as they apply on one device."""

    shader_dtype: torch.dtype
    vae_dtype: torch.dtype
    memory_format: torch.memory_format  #: the shading generator's
    vae_memory_format: torch.memory_format
    why: str  #: one line for logs and the server's hello


def resolve(options: EngineOptions, device: torch.device) -> Resolved:
    layout = memory_format(device)
    native = native_bf16(device)
    if options.precision == "reference":
        vae, why = torch.float32, "float32 throughout (the reference)"
    elif options.precision == "published" or not native:
        vae = torch.bfloat16 if device.type == "cuda" else torch.float32
        why = ("the VAE in bfloat16 as the published app runs it on CUDA" if vae == torch.bfloat16 else
               "float32 as the published app runs on this device")
        if options.precision == "fast":
            why += f" ({_no_native_bf16(device)})"
    else:
        vae = torch.bfloat16
        why = f"the VAE in bfloat16 ({native})"
    # cuDNN's bf16 GroupNorms are slower on NHWC: on an H100 the VAE took 157 ms in NCHW
    # against 217 ms channels-last (the speed issue's measurement)
    vae_layout = torch.contiguous_format if device.type == "cuda" and vae == torch.bfloat16 else layout
    return Resolved(torch.float32, vae, layout, vae_layout, why)


def memory_format(device: torch.device) -> torch.memory_format:
    """NHWC convolutions: about 1.3x faster on the CPU (oneDNN) and for cuDNN's bf16 kernels;
    MPS support for it is uneven, so it keeps the default layout."""
    return torch.contiguous_format if device.type == "mps" else torch.channels_last


def native_bf16(device: torch.device) -> str:
    """Why the device computes bfloat16 natively, or '' where it does not."""
    if device.type == "cuda":
        return "CUDA"
    if device.type == "cpu":
        flags = cpu_flags()
        for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16")):
            if flag in flags and torch.backends.mkldnn.is_available():
                return f"{name} through oneDNN"
    return ""


def _no_native_bf16(device: torch.device) -> str:
    if device.type == "cpu":
        return "this CPU has neither AVX512-BF16 nor AMX"
    return f"{device.type} has no fast bfloat16 path here"


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's instruction-set flags (Linux); empty where they cannot be read, which
    keeps float32 (macOS runs on MPS; Windows CPUs fall back to float32)."""
    if platform.system() != "Linux":
        return frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()
