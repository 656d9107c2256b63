"""In row bands, the networks compute what they compute untiled.

Bands are forced small, down to one row, so that halos, tensors written over while later
bands still read them, and the zero padding at the true edges are all exercised, on odd
heights and widths that are no multiple of the band. Tolerances: float32 within 1e-5
(tests/test_parity.py allows 1e-4 against the published implementation).
"""

import copy
import threading

import numpy as np
import pytest
import torch
from parity import case

from inknhue.engine.options import EngineOptions
from inknhue.engine.pipeline import Engine, _interruptible
from inknhue.errors import Cancelled
from inknhue.networks import AlignmentVAE, AutoencoderConfig, banded
from inknhue.networks.banded import Banding, BandPlan
from inknhue.rough import RoughRequest, get_provider
from inknhue.runtime.cache import StageCache, size_of

ATOL = 1e-5

#: (band rows, lean): one-row bands, bands that do not divide the height, whole levels
PLANS = [(1, True), (1, False), (3, True), (5, False), (7, True), (None, False)]


@pytest.fixture(scope="module")
def vae():
    """Two channels per GroupNorm group and two ResNet blocks a level (as the released
    kl-f8 has), random but non-trivial norms and projections."""
    torch.manual_seed(0)
    net = AlignmentVAE(AutoencoderConfig(channels=64, channel_multipliers=(1, 2, 2, 4), n_resnet_blocks=2))
    for module in net.modules():
        if isinstance(module, torch.nn.GroupNorm):
            torch.nn.init.normal_(module.weight, 1.0, 0.2)
            torch.nn.init.normal_(module.bias, 0.0, 0.2)
    for proj in net.cond_encoder.proj:
        torch.nn.init.normal_(proj.weight, std=0.05)
    return net.eval().requires_grad_(False).to(memory_format=torch.channels_last)


def image(height, width, seed=0, dtype=torch.float32):
    return (torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed)) * 2 - 1).to(dtype)


def plan(rows, lean):
    return BandPlan(band_rows=rows, lean=lean, memory_format=torch.channels_last)


def assert_close(got, expected, atol=ATOL):
    np.testing.assert_allclose(got.float().numpy(), expected.float().numpy(), atol=atol, rtol=0)


@pytest.mark.parametrize("rows,lean", PLANS)
def test_decoder_in_bands_equals_untiled(vae, rows, lean):
    z = torch.randn(1, 4, 5, 7, generator=torch.Generator().manual_seed(1))  # 40 x 56 decoded
    with torch.inference_mode():
        conditions = vae.condition(image(40, 56))
        assert_close(banded.decode(plan(rows, lean), vae, z, conditions), vae.decode(z, conditions))


@pytest.mark.parametrize("rows,lean", PLANS)
@pytest.mark.parametrize("height,width", [(40, 56), (37, 29)])
def test_encoder_in_bands_equals_untiled(vae, rows, lean, height, width):
    x = image(height, width, seed=2)
    with torch.inference_mode():
        mean, logvar = banded.encode(plan(rows, lean), vae, x)
        expected_mean, expected_logvar = vae.encode(x)
    assert_close(mean, expected_mean)
    assert_close(logvar, expected_logvar)


@pytest.mark.parametrize("rows,lean", PLANS)
@pytest.mark.parametrize("height,width", [(40, 56), (37, 29)])
def test_conditional_encoder_in_bands_equals_untiled(vae, rows, lean, height, width):
    x = image(height, width, seed=3)
    with torch.inference_mode():
        got = banded.condition(plan(rows, lean), vae, x)
        expected = vae.condition(x)
        # a lean plan keeps the banded levels' projections as recipes, recomputed when asked
        assert [isinstance(g, banded.Recomputed) for g in got] == [lean, lean, False, False]
        assert [tuple(g.shape) for g in got] == [tuple(e.shape) for e in expected]
        for g, e in zip(got, expected, strict=True):
            assert_close(banded.as_tensor(g), e)


@pytest.mark.parametrize("rows,lean", [(1, True), (3, False), (4, True)])
def test_whole_vae_in_bands_is_as_exact_as_untiled(vae, rows, lean):
    """Encoder then decoder: rounding adds up (the untiled path's own two memory layouts
    differ by 9e-6 here), so both are held against float64 arithmetic."""
    rough, shaded = image(48, 40, seed=4), image(48, 40, seed=5)
    with torch.inference_mode():
        exact = copy.deepcopy(vae).double()(rough.double(), shaded.double())
        untiled = vae(rough, shaded)
        p = plan(rows, lean)
        mean, _ = banded.encode(p, vae, rough)
        got = banded.decode(p, vae, mean, banded.condition(p, vae, shaded))
    untiled_error = (untiled.double() - exact).abs().max().item()
    assert (got.double() - exact).abs().max().item() <= max(1.5 * untiled_error, ATOL)


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])  # CPU; CUDA (NCHW)
def test_bf16_in_bands_is_as_close_to_float32_as_untiled_bf16(vae, layout):
    """The bf16 VAE (CUDA, and CPUs with native bf16), run here on the CPU."""
    rough, shaded = image(48, 40, seed=6), image(48, 40, seed=7)
    half = copy.deepcopy(vae).to(torch.bfloat16, memory_format=layout)
    with torch.inference_mode():
        reference = vae(rough, shaded)
        untiled = half(rough.bfloat16(), shaded.bfloat16()).float()
        p = BandPlan(band_rows=3, lean=True, memory_format=layout)
        mean, _ = banded.encode(p, half, rough.bfloat16())
        got = banded.decode(p, half, mean, banded.condition(p, half, shaded.bfloat16()))
    assert got.dtype == torch.bfloat16
    untiled_error = (untiled - reference).abs().max().item()
    banded_error = (got.float() - reference).abs().max().item()
    assert untiled_error > 1e-3  # bf16 does round
    assert banded_error < 2 * untiled_error, (banded_error, untiled_error)
    assert (got.float() - untiled).abs().mean() < 3 * (untiled - reference).abs().mean()


def test_default_banding_leaves_small_pages_untiled_and_bands_large_ones():
    default = Banding()
    f32, bf16 = torch.float32, torch.bfloat16
    assert default.plan(1088, 768, f32, 128, 4) is None  # A4 at max size 768: as before
    assert default.plan(2176, 1536, f32, 128, 4).lean  # A4 at 1536 in float32
    assert not default.plan(1448, 1024, f32, 128, 4).lean  # kept intermediates fit the budget
    assert default.plan(2896, 2048, bf16, 128, 4).lean
    assert Banding(enabled=False).plan(2896, 2048, f32, 128, 4) is None
    assert Banding(enabled=True).plan(64, 64, f32, 128, 4) is not None


def test_a_gpu_with_room_for_the_untiled_networks_runs_them_and_a_small_one_bands():
    bf16, gib = torch.bfloat16, 1 << 30
    full = 2896 * 2048 * 128 * 2  # one full-resolution tensor of an A4 page at max size 2048
    assert Banding().plan(2896, 2048, bf16, 128, 4, free_bytes=70 * gib) is None  # an 80 GB GPU
    assert Banding().plan(2896, 2048, bf16, 128, 4, free_bytes=7 * gib).lean  # an 8 GB GPU
    assert Banding().plan(2896, 2048, bf16, 128, 4, free_bytes=int(9.5 * full)) is not None  # untiled would not fit
    assert Banding().plan(2896, 2048, bf16, 128, 4) is not None  # unknown (a CPU): bands
    assert Banding(enabled=True).plan(2896, 2048, bf16, 128, 4, free_bytes=70 * gib) is not None


def test_a_recomputed_condition_is_cached_at_the_size_of_its_recipe(vae):
    x = image(40, 56)
    with torch.inference_mode():
        conditions = banded.condition(plan(None, True), vae, x)
    cache = StageCache()
    cache.put("conditions", conditions)
    finest, half = conditions[:2]
    assert finest.nbytes == x.numel() * x.element_size()  # the shaded page
    assert half.nbytes == 64 * 20 * 28 * 4  # the level's input: 64 channels at half resolution
    assert cache.bytes == size_of(conditions) == finest.nbytes + half.nbytes + sum(size_of(c) for c in conditions[2:])


def test_a_cancelled_job_stops_between_bands(vae):
    z = torch.randn(1, 4, 5, 7)
    with torch.inference_mode():
        conditions = vae.condition(image(40, 56))
    bands = []

    def cancelled():
        bands.append(threading.get_ident())
        return len(bands) > 200

    with pytest.raises(Cancelled), _interruptible(cancelled), torch.inference_mode():
        # only band steps are modules here after the mid block: one-row bands give many
        banded.decode(plan(1, True), vae, z, conditions)
    assert len(bands) == 201


@pytest.mark.parametrize("lean", [True, False])
def test_engine_in_bands_colorizes_the_parity_page_as_untiled(parity_weights, lean):
    page = case("page_rgb_uint8")
    request = RoughRequest(page=page, rough=case("app_rough_uint8"))
    results = {}
    for name, banding in (("untiled", Banding(enabled=False)),
                          ("banded", Banding(enabled=True, band_rows=5, lean=lean))):
        engine = Engine(parity_weights, "cpu", options=EngineOptions("reference", banding))
        results[name] = engine.colorize(page, get_provider("image"), request, max_size=64, ratio=0.8)
    untiled, bands = results["untiled"], results["banded"]
    assert np.abs(bands.generated.astype(int) - untiled.generated.astype(int)).max() <= 1
    assert np.abs(bands.generated.astype(int) - case("app_generated_uint8").astype(int)).max() <= 2
    assert np.abs(bands.final(0.8, "working").astype(int) - case("app_final_ratio0.8_uint8").astype(int)).max() <= 2


def test_engine_in_bands_reuses_cached_conditions_for_new_rough_colours(parity_weights):
    page = case("page_rgb_uint8")
    engine = Engine(parity_weights, "cpu", EngineOptions("reference", Banding(enabled=True, band_rows=3, lean=True)))
    untiled = Engine(parity_weights, "cpu", options=EngineOptions("reference", Banding(enabled=False)))
    cache = StageCache()
    for rough in (case("app_rough_uint8"), case("app_rough_uint8")[:, ::-1].copy()):
        request = RoughRequest(page=page, rough=rough)
        got = engine.colorize(page, get_provider("image"), request, max_size=64, cache=cache)
        expected = untiled.colorize(page, get_provider("image"), request, max_size=64)
        assert np.abs(got.generated.astype(int) - expected.generated.astype(int)).max() <= 1
    assert "condition" not in got.ran  # the recipe came from the cache



@pytest.mark.parametrize("rows,lean", [(3, True), (5, False)])
def test_bands_count_the_work_they_do_and_planned_it_on_the_meta_device(vae, rows, lean):
    """Progress (progress.py) sees the functional convolutions of bands as module calls, and
    the engine plans a banded stage's total (halos and recomputation included) on meta tensors."""
    from inknhue.runtime.progress import measure_work

    def passes(net, x, z):
        conditions = []
        return [measure_work(lambda: conditions.extend(banded.condition(plan(rows, lean), net, x))),
                measure_work(lambda: banded.encode(plan(rows, lean), net, x)),
                measure_work(lambda: banded.decode(plan(rows, lean), net, z, conditions))]

    x = image(40, 56, seed=4)
    z = torch.randn(1, 4, 5, 7, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        done = passes(vae, x, z)
        conditions = vae.condition(x)
        untiled = [measure_work(lambda: vae.condition(x)), measure_work(lambda: vae.encode(x)),
                   measure_work(lambda: vae.decode(z, conditions))]
    with torch.device("meta"), torch.inference_mode():
        meta_vae = AlignmentVAE(vae.config)
        planned = passes(meta_vae, torch.empty(x.shape), torch.empty(z.shape))
    assert done == planned
    assert all(d >= u for d, u in zip(done, untiled, strict=True))
