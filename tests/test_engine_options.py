"""The engine's precisions: which device runs what in which dtype, and how far the fast
paths stay from the float32 reference (the parity fixtures' numbers)."""

import numpy as np
import pytest
import torch
from parity import case

from inknhue.engine import options
from inknhue.engine.options import EngineOptions, resolve
from inknhue.engine.pipeline import Engine
from inknhue.errors import DeviceError
from inknhue.rough import RoughRequest, get_provider

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture
def cpu_with(monkeypatch):
    def flags(*names):
        monkeypatch.setattr(options, "cpu_flags", lambda: frozenset(names))
    return flags


def test_the_reference_is_float32_throughout_on_every_device(cpu_with):
    cpu_with("avx512_bf16", "amx_bf16")
    for device in (CPU, CUDA):
        resolved = resolve(EngineOptions(precision="reference"), device)
        assert (resolved.shader_dtype, resolved.vae_dtype) == (torch.float32, torch.float32)


def test_published_runs_the_vae_in_bf16_on_cuda_only_as_the_app_does(cpu_with):
    cpu_with("avx512_bf16")
    assert resolve(EngineOptions(precision="published"), CUDA).vae_dtype == torch.bfloat16
    assert resolve(EngineOptions(precision="published"), CPU).vae_dtype == torch.float32


def test_fast_takes_bf16_where_the_cpu_computes_it_natively_and_says_so(cpu_with):
    for flag, name in (("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX")):
        cpu_with("avx512f", flag)
        resolved = resolve(EngineOptions(), CPU)
        assert resolved.vae_dtype == torch.bfloat16 and name in resolved.why
        assert resolved.shader_dtype == torch.float32  # its deviation is amplified by the VAE


def test_layouts_channels_last_for_convolutions_but_the_bf16_vae_on_cuda(cpu_with):
    cpu_with("avx512_bf16")
    on_cpu, on_cuda = resolve(EngineOptions(), CPU), resolve(EngineOptions(), CUDA)
    assert on_cpu.memory_format == on_cpu.vae_memory_format == torch.channels_last
    assert on_cuda.memory_format == torch.channels_last
    assert on_cuda.vae_memory_format == torch.contiguous_format  # measured faster on an H100
    assert resolve(EngineOptions("reference"), CUDA).vae_memory_format == torch.channels_last


def test_fast_falls_back_to_float32_on_a_cpu_without_bf16_and_says_why(cpu_with):
    cpu_with("avx2", "avx512f")  # AVX-512 alone emulates bf16: slower than float32
    resolved = resolve(EngineOptions(), CPU)
    assert resolved.vae_dtype == torch.float32
    assert "neither AVX512-BF16 nor AMX" in resolved.why


def test_an_unknown_precision_is_refused_naming_the_choices():
    with pytest.raises(DeviceError, match="unknown precision 'half'.*fast, published, reference"):
        EngineOptions(precision="half")


def test_each_precision_has_its_own_loaded_networks(parity_weights, cpu_with):
    cpu_with("avx512_bf16")
    fast, reference = Engine(parity_weights, "cpu"), Engine(parity_weights, "cpu", EngineOptions("reference"))
    assert next(fast.vae.parameters()).dtype == torch.bfloat16
    assert next(reference.vae.parameters()).dtype == torch.float32
    assert fast.generator is reference.generator  # both float32: one copy


def test_the_engine_describes_its_precision_and_why(parity_weights, cpu_with):
    cpu_with()
    described = Engine(parity_weights, "cpu").describe()
    assert described["precision"] == "fast" and "float32" in described["precision_why"]


def levels(a, b):
    d = np.abs(a.astype(int) - b.astype(int))
    return d.max(), np.percentile(d, 99)


def test_the_bf16_vae_stays_within_a_few_levels_of_float32(parity_weights, cpu_with):
    """The fast path on the parity page against the reference in the same run. bf16 keeps
    8 bits of mantissa: the published app's own CUDA output differs from its float32 output
    by as much (benchmarks/bench_page.py --precision measures it on full-size weights)."""
    cpu_with("avx512_bf16")
    page = case("page_rgb_uint8")
    request = RoughRequest(page=page, rough=case("app_rough_uint8"))
    results = {precision: Engine(parity_weights, "cpu", EngineOptions(precision)).colorize(
        page, get_provider("image"), request, max_size=64) for precision in ("fast", "reference")}
    fast, reference = results["fast"], results["reference"]
    assert np.array_equal(fast.shaded, reference.shaded)  # the shading generator is float32 in both
    worst, p99 = levels(fast.generated, reference.generated)
    assert 0 < worst <= 16 and p99 <= 8  # not 0: the fast path did run in bf16
    worst, p99 = levels(fast.final(0.8, "working"), reference.final(0.8, "working"))
    assert worst <= 16 and p99 <= 6
