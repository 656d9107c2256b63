"""Loading the released weights: where they are found, and every way they can be wrong."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from parity import manifest_parts

from inknhue import weights
from inknhue.errors import WeightsError
from inknhue.weights import checkpoints


def load_everything(directory: Path):
    checkpoints.load_shading_generator(directory)
    checkpoints.load_alignment_vae(directory)


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# --- where the weights are ---------------------------------------------------------------

def test_default_folder_is_in_the_user_data_dir(isolated_user_dirs):
    assert weights.resolve_weights_dir() == isolated_user_dirs / ".local/share/inknhue/weights"


def test_environment_variable_overrides_the_default(monkeypatch, tmp_path):
    monkeypatch.setenv("INKNHUE_WEIGHTS", str(tmp_path / "env"))
    assert weights.resolve_weights_dir() == tmp_path / "env"


def test_explicit_folder_overrides_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("INKNHUE_WEIGHTS", str(tmp_path / "env"))
    assert weights.resolve_weights_dir(tmp_path / "cli") == tmp_path / "cli"


def test_released_layout_has_the_four_hub_files(parity_weights):
    assert weights.missing_files(parity_weights) == []
    assert sorted(weights.FILES) == sorted(
        str(p.relative_to(parity_weights)) for p in parity_weights.rglob("*") if p.is_file())


# --- what is accepted --------------------------------------------------------------------

def test_kl_f8_decoder_and_loss_tensors_are_skipped(parity_weights):
    kl = torch.load(parity_weights / weights.KL_F8, weights_only=True)["state_dict"]
    assert any(k.startswith("decoder.") for k in kl) and any(k.startswith("loss.") for k in kl)
    parts = checkpoints.split_kl_f8(parity_weights / weights.KL_F8, kl)
    assert set(parts) == {"encoder", "quant_conv", "post_quant_conv"}
    assert all(not k.startswith(("decoder", "loss")) for part in parts.values() for k in part)


class LightningCallbackLike:
    """A class that does not exist where the weights are loaded, like Lightning's callbacks."""

    def __init__(self):
        self.best_model_score = np.float64(0.25)


def test_training_bookkeeping_objects_do_not_stop_loading(weights_copy):
    path = weights_copy / weights.KL_F8
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["callbacks"] = {"ModelCheckpoint": LightningCallbackLike()}
    checkpoint["hparams"] = np.array([1.0, 2.0])
    torch.save(checkpoint, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # what plain weights-only loading does
    load_everything(weights_copy)


class Payload:
    def __reduce__(self):
        return (os.system, ("touch hacked",))


def test_a_checkpoint_that_calls_code_is_refused_and_runs_nothing(weights_copy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = weights_copy / weights.CONDITIONAL
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["extra"] = Payload()
    torch.save(checkpoint, path)
    with pytest.raises(WeightsError) as excinfo:
        load_everything(weights_copy)
    assert "system" in one_line_error(excinfo) and "refusing" in str(excinfo.value)
    assert not (tmp_path / "hacked").exists()


# --- what is refused, with one line that names the file and the fix ------------------------

@pytest.mark.parametrize("name", weights.FILES)
def test_missing_file(weights_copy, name):
    (weights_copy / name).unlink()
    with pytest.raises(WeightsError) as excinfo:
        load_everything(weights_copy)
    message = one_line_error(excinfo)
    assert str(weights_copy / name) in message and "inknhue weights download" in message


@pytest.mark.parametrize("name", [weights.SHADER, weights.KL_F8, weights.CONDITIONAL])
def test_truncated_checkpoint(weights_copy, name):
    path = weights_copy / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError) as excinfo:
        load_everything(weights_copy)
    message = one_line_error(excinfo)
    assert str(path) in message and "truncated or corrupt" in message


def test_empty_checkpoint(weights_copy):
    (weights_copy / weights.SHADER).write_bytes(b"")
    with pytest.raises(WeightsError, match="is empty"):
        load_everything(weights_copy)


def test_git_lfs_pointer_instead_of_weights(weights_copy):
    (weights_copy / weights.KL_F8).write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 334695179\n")
    with pytest.raises(WeightsError, match="Git LFS pointer"):
        load_everything(weights_copy)


def test_an_error_page_saved_as_a_checkpoint(weights_copy):
    (weights_copy / weights.CONDITIONAL).write_text("<!DOCTYPE html><html>502 Bad Gateway</html>")
    with pytest.raises(WeightsError, match="web page"):
        load_everything(weights_copy)


def test_random_bytes(weights_copy):
    (weights_copy / weights.SHADER).write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(WeightsError) as excinfo:
        load_everything(weights_copy)
    assert "shader.ckpt" in one_line_error(excinfo)


def test_missing_key_in_the_shader(weights_copy):
    state = manifest_parts("shader")["<root>"]
    del state["tunnel4.2.7.conv_conv.weight"]
    torch.save(state, weights_copy / weights.SHADER)
    with pytest.raises(WeightsError) as excinfo:
        load_everything(weights_copy)
    message = one_line_error(excinfo)
    assert "shader.ckpt" in message and "1 missing key(s) (tunnel4.2.7.conv_conv.weight)" in message


def test_unexpected_key_in_the_shader(weights_copy):
    state = manifest_parts("shader")["<root>"]
    state["generator.extra.weight"] = torch.zeros(1)
    torch.save(state, weights_copy / weights.SHADER)
    with pytest.raises(WeightsError, match=r"1 unexpected key\(s\) \(generator.extra.weight\)"):
        load_everything(weights_copy)


def test_wrong_shape_in_the_conditional_decoder(weights_copy):
    path = weights_copy / weights.CONDITIONAL
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["cond_decoder_state_dict"]["conv_out.weight"] = torch.zeros(3, 64, 3, 3)
    torch.save(checkpoint, path)
    with pytest.raises(WeightsError, match=r"model_epoch000019.ckpt.*wrong shape key\(s\) \(conv_out.weight\)"):
        load_everything(weights_copy)


def test_unknown_prefix_in_kl_f8(weights_copy):
    path = weights_copy / weights.KL_F8
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["state_dict"]["model_ema.decay"] = torch.tensor(0.999)
    torch.save(checkpoint, path)
    with pytest.raises(WeightsError, match="kl-f8.ckpt has an unexpected key 'model_ema.decay'"):
        load_everything(weights_copy)


def test_kl_f8_without_state_dict(weights_copy):
    path = weights_copy / weights.KL_F8
    torch.save(torch.load(path, weights_only=True)["state_dict"], path)  # a bare state dict
    with pytest.raises(WeightsError, match="'state_dict' entry is not a state dict"):
        load_everything(weights_copy)


def test_conditional_checkpoint_without_encoder(weights_copy):
    path = weights_copy / weights.CONDITIONAL
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["cond_encoder_state_dict"]
    torch.save(checkpoint, path)
    with pytest.raises(WeightsError, match="'cond_encoder_state_dict' entry is not a state dict"):
        load_everything(weights_copy)


def test_yaml_of_another_size_is_a_shape_error_not_a_crash(weights_copy):
    path = weights_copy / weights.KL_F8_CONFIG
    path.write_text(path.read_text().replace("ch: 32", "ch: 64"))
    with pytest.raises(WeightsError, match="kl-f8.ckpt does not hold the released kl-f8 encoder"):
        load_everything(weights_copy)


def test_yaml_without_the_architecture(weights_copy):
    (weights_copy / weights.KL_F8_CONFIG).write_text("params:\n  embed_dim: 4\n")
    with pytest.raises(WeightsError, match="kl-f8.yaml is not the kl-f8 config"):
        load_everything(weights_copy)


def test_command_line_reports_missing_weights_in_one_line(tmp_path, cli):
    from PIL import Image

    Image.new("RGB", (64, 96), "white").save(tmp_path / "page.png")
    done = cli("colorize", tmp_path / "page.png", "--rough", tmp_path / "page.png", "-o",
               tmp_path / "out.png", "--weights", tmp_path / "nowhere")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("inknhue: error: weights missing in")
    assert "inknhue weights download" in lines[0]
    assert not (tmp_path / "out.png").exists()


def test_weights_check_command(parity_weights, cli):
    done = cli("weights", "check", "--weights", parity_weights)
    assert done.returncode == 0, done.stderr
    assert "all networks load strictly" in done.stderr
