"""Reading the released checkpoints strictly and safely, into the networks.

Every checkpoint is read with `torch.load(weights_only=True)`. Training checkpoints also
hold bookkeeping objects (Lightning callbacks, numpy scalars, ...) that the weights-only
unpickler refuses; those are replaced by inert stand-ins that keep their arguments and
run no code, so a file can never execute anything here.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import WeightsError
from ..networks import AlignmentVAE, AutoencoderConfig, ShadingGenerator
from . import CONDITIONAL, KL_F8, KL_F8_CONFIG, REPLACE, SHADER, require

log = logging.getLogger(__name__)

# kl-f8.ckpt prefixes: the alignment model uses the first three and skips the rest.
_KL_F8_USED = ("encoder.", "quant_conv.", "post_quant_conv.")
_KL_F8_SKIPPED = ("decoder.", "loss.")
_GIT_LFS_POINTER = b"version https://git-lfs.github.com/spec/"


class _Inert:
    """Stand-in for a non-tensor object in a checkpoint: records its arguments, runs nothing."""

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.args = args
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return f"<inert {type(self).__module__}.{type(self).__qualname__}>"


def _inert_global(qualified_name: str):
    module, _, name = qualified_name.rpartition(".")
    stub = type(name, (_Inert,), {"__module__": module, "__qualname__": name})
    return (stub, qualified_name)


def _unreadable(path: Path, reason: str) -> WeightsError:
    return WeightsError(f"{path} is {reason}; {REPLACE}")


def read_checkpoint(path: Path) -> Any:
    """torch.load(weights_only=True) on the CPU, with inert stand-ins for bookkeeping objects."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not head:
        raise _unreadable(path, "empty")
    if head.startswith(_GIT_LFS_POINTER):
        raise _unreadable(path, "a Git LFS pointer, not the weights (cloned without git-lfs)")
    if head.lstrip().startswith((b"<!DOCTYPE", b"<html", b"<HTML", b"{")):
        raise _unreadable(path, "a web page or JSON text, not a checkpoint (a failed download?)")

    is_zip = zipfile.is_zipfile(path)
    extra_globals = []
    if is_zip:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception as exc:  # a damaged archive: let torch.load below report it
            log.debug("scanning %s for globals failed: %s", path, exc)
            unsafe = []
        if unsafe:
            log.info("%s: standing in for non-tensor objects %s", path.name, ", ".join(unsafe))
        extra_globals = [_inert_global(name) for name in unsafe]
    try:
        with torch.serialization.safe_globals(extra_globals):
            # mmap: optimizer states and skipped tensors are never read from disk
            return torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as exc:
        detail = str(exc)
        if "blocked" in detail or "GLOBAL" in detail:  # not "Unsupported operand": that is garbage
            line = next((text for text in detail.splitlines() if "GLOBAL" in text), detail.splitlines()[-1])
            raise WeightsError(
                f"{path} refers to code, which no weights file needs ({line.strip()}); "
                f"refusing to load it; {REPLACE}") from exc
        raise _unreadable(path, "corrupt (not a PyTorch checkpoint)") from exc
    except Exception as exc:  # noqa: BLE001  (garbage makes the unpickler fail in any way: IndexError, struct.error...)
        size = path.stat().st_size
        raise _unreadable(path, f"truncated or corrupt ({size} bytes: {type(exc).__name__}: "
                                f"{_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:160]


def _state_dict_at(path: Path, checkpoint: Any, key: str | None) -> Mapping[str, Any]:
    value = checkpoint if key is None else (
        checkpoint.get(key) if isinstance(checkpoint, Mapping) else None)
    if not isinstance(value, Mapping):
        where = "the file" if key is None else f"its '{key}' entry"
        raise WeightsError(f"{path}: {where} is not a state dict: not the released file; {REPLACE}")
    return value


def _load_strict(module: nn.Module, state: Mapping[str, Any], path: Path, what: str) -> None:
    """load_state_dict(strict=True), with a one-line error that names the file and the keys."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and (
        not isinstance(state[k], torch.Tensor) or state[k].shape != expected[k].shape)]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if keys:
            shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
            problems.append(f"{len(keys)} {label} key(s) ({shown})")
    if problems:
        raise WeightsError(f"{path} does not hold the released {what}: {'; '.join(problems)}; {REPLACE}")
    module.load_state_dict(state, strict=True)


# --- the two networks ------------------------------------------------------------------

def load_autoencoder_config(path: Path) -> AutoencoderConfig:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        params = data["params"]
        dd = params["ddconfig"]
        return AutoencoderConfig(
            embed_dim=int(params["embed_dim"]),
            z_channels=int(dd["z_channels"]),
            in_channels=int(dd["in_channels"]),
            out_channels=int(dd["out_ch"]),
            channels=int(dd["ch"]),
            channel_multipliers=tuple(int(m) for m in dd["ch_mult"]),
            n_resnet_blocks=int(dd["num_res_blocks"]),
        )
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise WeightsError(
            f"{path} is not the kl-f8 config (needs params.embed_dim and params.ddconfig "
            f"with z_channels, in_channels, out_ch, ch, ch_mult, num_res_blocks: {_first_line(exc)}); "
            f"{REPLACE}") from exc


def load_shading_generator(weights_dir: Path) -> ShadingGenerator:
    path = require(weights_dir, SHADER)
    generator = ShadingGenerator()
    _load_strict(generator, _state_dict_at(path, read_checkpoint(path), None), path,
                 "shading generator (shader.ckpt)")
    return generator.eval().requires_grad_(False)


def split_kl_f8(path: Path, state: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """kl-f8's state_dict by submodule; decoder.* and loss.* are dropped, anything else is an error."""
    parts: dict[str, dict[str, Any]] = {p.rstrip("."): {} for p in _KL_F8_USED}
    for key, value in state.items():
        prefix = next((p for p in _KL_F8_USED if key.startswith(p)), None)
        if prefix is not None:
            parts[prefix.rstrip(".")][key[len(prefix):]] = value
        elif not key.startswith(_KL_F8_SKIPPED):
            raise WeightsError(f"{path} has an unexpected key '{key}' (expected encoder.*, quant_conv.*, "
                               f"post_quant_conv.*, decoder.*, loss.*): not the kl-f8 checkpoint; {REPLACE}")
    return parts


def load_alignment_vae(weights_dir: Path) -> AlignmentVAE:
    config = load_autoencoder_config(require(weights_dir, KL_F8_CONFIG))
    kl_path = require(weights_dir, KL_F8)
    cond_path = require(weights_dir, CONDITIONAL)
    vae = AlignmentVAE(config)

    kl_state = _state_dict_at(kl_path, read_checkpoint(kl_path), "state_dict")
    for name, state in split_kl_f8(kl_path, kl_state).items():
        _load_strict(getattr(vae, name), state, kl_path, f"kl-f8 {name} (for {config.channels} channels)")

    conditional = read_checkpoint(cond_path)
    for name in ("cond_encoder", "cond_decoder"):
        state = _state_dict_at(cond_path, conditional, f"{name}_state_dict")
        _load_strict(getattr(vae, name), state, cond_path, f"alignment {name}")
    return vae.eval().requires_grad_(False)
