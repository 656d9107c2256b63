"""Random weights at the released networks' full size, written in the released file layout.

Benchmarks need the real architecture's cost, not the real weights' values.
"""

from __future__ import annotations

from pathlib import Path

import torch

from inknhue import weights
from inknhue.networks import AlignmentVAE, AutoencoderConfig, ShadingGenerator

KL_F8_YAML = """params:
  embed_dim: 4
  ddconfig:
    z_channels: 4
    in_channels: 3
    out_ch: 3
    ch: 128
    ch_mult: [1, 2, 4, 4]
    num_res_blocks: 2
"""


def write_fullsize_weights(dest: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    (dest / "pretrained_nets").mkdir(parents=True, exist_ok=True)
    (dest / "conditional_nets").mkdir(parents=True, exist_ok=True)
    torch.save(ShadingGenerator().state_dict(), dest / weights.SHADER)
    vae = AlignmentVAE(AutoencoderConfig())
    for proj in vae.cond_encoder.proj:  # trained projections are not zero
        torch.nn.init.normal_(proj.weight, std=0.02)
    state = vae.state_dict()
    first_stage = {k: v for k, v in state.items() if not k.startswith("cond_")}
    torch.save({"state_dict": first_stage}, dest / weights.KL_F8)
    (dest / weights.KL_F8_CONFIG).write_text(KL_F8_YAML)
    torch.save({"cond_encoder_state_dict": vae.cond_encoder.state_dict(),
                "cond_decoder_state_dict": vae.cond_decoder.state_dict()}, dest / weights.CONDITIONAL)
    return dest
