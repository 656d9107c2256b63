"""The networks and glue code compute what the published implementation computes.

Weights are rebuilt from tests/data/parity manifests, written in the released file
layouts, and loaded through the real loader (inknhue.weights), strictly.
"""

import numpy as np
import pytest
import torch
from parity import case
from PIL import Image

from inknhue.engine.options import EngineOptions
from inknhue.engine.pipeline import Engine
from inknhue.networks import shading
from inknhue.page.color import LabBlend
from inknhue.rough import RoughRequest, get_provider
from inknhue.weights import checkpoints


def max_level_difference(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape, (a.shape, b.shape)
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


@pytest.fixture(scope="module")
def engine(parity_weights):
    return Engine(parity_weights, device="cpu", options=EngineOptions(precision="reference"))


def test_generator_forward_matches_both_outputs(parity_weights):
    generator = checkpoints.load_shading_generator(parity_weights)
    with torch.inference_mode():
        colour, guide = generator(torch.from_numpy(case("generator_in_f32")))
    np.testing.assert_allclose(colour.numpy(), case("generator_out_f32"), atol=1e-4, rtol=0)
    np.testing.assert_allclose(guide.numpy(), case("generator_guide_f32"), atol=1e-4, rtol=0)


def test_generator_colour_without_the_guide_is_the_same_colour(parity_weights):
    """The pipeline skips the guide decoder; the colour must not notice (bitwise)."""
    generator = checkpoints.load_shading_generator(parity_weights)
    with torch.inference_mode():
        x = torch.from_numpy(case("generator_in_f32"))
        colour, _ = generator(x)
        alone, guide = generator(x, guide=False)
    assert guide is None
    assert torch.equal(alone, colour)


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_in_place_batch_norm_is_bitwise_the_module(parity_weights, layout):
    bn = checkpoints.load_shading_generator(parity_weights).encoder.bn1
    x = torch.randn(1, 64, 9, 13).contiguous(memory_format=layout)
    with torch.inference_mode():
        expected = bn(x)
        got = shading.batch_norm_(bn, x.clone())
    assert torch.equal(got, expected)


def test_alignment_vae_latent_and_decoded_mean_match(parity_weights):
    vae = checkpoints.load_alignment_vae(parity_weights)
    with torch.inference_mode():
        mean, logvar = vae.encode(torch.from_numpy(case("vae_rough_in_f32")))
        out = vae.decode(mean, vae.condition(torch.from_numpy(case("vae_shaded_in_f32"))))
    np.testing.assert_allclose(mean.numpy(), case("vae_latent_mean_f32"), atol=1e-4, rtol=0)
    np.testing.assert_allclose(logvar.numpy(), case("vae_latent_logvar_f32"), atol=1e-4, rtol=0)
    np.testing.assert_allclose(out.numpy(), case("vae_out_from_mean_f32"), atol=1e-4, rtol=0)


def test_vae_size_comes_from_the_yaml_beside_the_checkpoint(parity_weights):
    vae = checkpoints.load_alignment_vae(parity_weights)
    assert vae.config.channels == 32
    assert vae.config.channel_multipliers == (1, 2, 2, 4)
    assert vae.config.n_resnet_blocks == 1


def test_shading_stage_matches_within_one_grey_level(engine):
    shaded = engine.shade(case("page_rgb_uint8"), max_size=64)
    assert max_level_difference(shaded, case("shade_size64_out_uint8")) <= 1


@pytest.mark.parametrize("ratio", ["0.0", "0.5", "0.8", "1.0"])
def test_lab_blend_matches_within_two_levels(ratio):
    blended = LabBlend(case("blend_generated_uint8"), case("blend_rough_uint8"))(float(ratio))
    assert max_level_difference(blended, case(f"blend_ratio{ratio}_uint8")) <= 2


def test_whole_page_through_the_engine(engine):
    page = case("page_rgb_uint8")
    request = RoughRequest(page=page, rough=case("app_rough_uint8"))
    result = engine.colorize(page, get_provider("image"), request, max_size=64, ratio=0.8)
    assert max_level_difference(result.generated, case("app_generated_uint8")) <= 2
    assert max_level_difference(result.final(0.8, "working"), case("app_final_ratio0.8_uint8")) <= 2


def test_whole_page_through_the_command_line(parity_weights, tmp_path, cli):
    Image.fromarray(case("page_rgb_uint8")).save(tmp_path / "page.png")
    Image.fromarray(case("app_rough_uint8")).save(tmp_path / "rough.png")
    out = tmp_path / "out.png"
    done = cli("colorize", tmp_path / "page.png", "--rough", tmp_path / "rough.png", "-o", out,
               "--output-size", "working", "--max-size", "64", "--ratio", "0.8",
               "--weights", parity_weights, "--device", "cpu", "--precision", "reference")
    assert done.returncode == 0, done.stderr
    result = np.asarray(Image.open(out))
    assert max_level_difference(result, case("app_final_ratio0.8_uint8")) <= 2
