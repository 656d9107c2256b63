"""Rebuild the parity weights (tests/data/parity, see its README) in the released file layouts."""

from __future__ import annotations

import json
import shutil
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).parent / "data" / "parity"


def case(name: str) -> np.ndarray:
    return np.load(DATA / f"{name}.npy")


def manifest_parts(checkpoint: str) -> dict[str, OrderedDict]:
    """{location: state_dict} for one manifest; tensor i of a part is drawn from rng([seed, i])."""
    manifest = json.loads((DATA / f"{checkpoint}.ckpt.manifest.json").read_text())
    parts: dict[str, OrderedDict] = {}
    for part in manifest["parts"]:
        state = parts.setdefault(part["location"], OrderedDict())
        for i, spec in enumerate(part["tensors"]):
            shape = tuple(spec["shape"])
            if spec["dtype"] == "int64":
                state[spec["key"]] = torch.zeros(shape, dtype=torch.int64)
            else:
                draw = np.random.default_rng([part["seed"], i]).standard_normal(shape)
                value = np.asarray(spec["mean"] + spec["std"] * draw, dtype=np.float32)
                state[spec["key"]] = torch.from_numpy(value)
    return parts


def write_released_layout(dest: Path) -> Path:
    """Write the four files exactly where and how the Hugging Face repo has them."""
    (dest / "pretrained_nets").mkdir(parents=True, exist_ok=True)
    (dest / "conditional_nets").mkdir(parents=True, exist_ok=True)

    torch.save(manifest_parts("shader")["<root>"], dest / "pretrained_nets" / "shader.ckpt")

    kl = manifest_parts("kl-f8")["state_dict"]
    torch.save({"state_dict": kl, "epoch": 5, "global_step": 123456},
               dest / "pretrained_nets" / "kl-f8.ckpt")
    shutil.copy(DATA / "kl-f8.yaml", dest / "pretrained_nets" / "kl-f8.yaml")

    cond = manifest_parts("conditional")
    torch.save({
        "epoch": 19,
        "global_step": 99999,
        "rec_loss": 0.0123,
        "cond_encoder_state_dict": cond["cond_encoder_state_dict"],
        "cond_decoder_state_dict": cond["cond_decoder_state_dict"],
        "optimizer_g_state_dict": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]},
    }, dest / "conditional_nets" / "model_epoch000019.ckpt")
    return dest


def level_differences(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    """(the largest difference in 8-bit levels, the fraction of values that differ)"""
    difference = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return int(difference.max()), float(np.count_nonzero(difference)) / difference.size
