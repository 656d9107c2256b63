"""inkn'hue's alignment multi-encoder VAE.

- `encoder`, `quant_conv`, `post_quant_conv`: the frozen first-stage KL autoencoder
  (kl-f8 of latent diffusion); its encoder reads the rough colours.
- `cond_encoder`: a copy of the encoder's down path that reads the shaded page and
  emits, per resolution level, a zero-initialised 1x1 projection of its features.
- `cond_decoder`: the kl-f8 decoder, adding each level's projection after the level's
  ResNet blocks and before up-sampling.

Submodule names follow the released checkpoints: kl-f8.ckpt's `encoder.*`,
`quant_conv.*`, `post_quant_conv.*`, and model_epoch000019.ckpt's
`cond_encoder_state_dict` / `cond_decoder_state_dict`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LOGVAR_RANGE = (-30.0, 20.0)


@dataclass(frozen=True)
class AutoencoderConfig:
    """The `params` of kl-f8.yaml that shape the networks."""

    embed_dim: int = 4
    z_channels: int = 4
    in_channels: int = 3
    out_channels: int = 3
    channels: int = 128
    channel_multipliers: tuple[int, ...] = (1, 2, 4, 4)
    n_resnet_blocks: int = 2

    @property
    def level_channels(self) -> list[int]:
        return [m * self.channels for m in self.channel_multipliers]

    @property
    def downscale(self) -> int:
        return 2 ** (len(self.channel_multipliers) - 1)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6)


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm1 = _norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nin_shortcut = (nn.Conv2d(in_channels, out_channels, 1)
                             if in_channels != out_channels else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in place on tensors of the block's own: fewer fresh page-sized tensors (each is
        # faulted in and zeroed by the kernel: host_memory.py)
        h = self.conv1(F.silu(self.norm1(x), inplace=True))
        h = self.conv2(F.silu(self.norm2(h), inplace=True))
        return h.add_(self.nin_shortcut(x))


class AttnBlock(nn.Module):
    """Single-head self-attention over all positions, with a residual connection."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x_norm = self.norm(x)

        def tokens(conv: nn.Conv2d) -> torch.Tensor:
            return conv(x_norm).reshape(b, 1, c, h * w).transpose(2, 3)

        # SDPA's default scale is c ** -0.5, as in the original; it never materialises
        # the (hw x hw) matrix, which at 768 px would take over half a gigabyte.
        out = F.scaled_dot_product_attention(tokens(self.q), tokens(self.k), tokens(self.v))
        out = out.transpose(2, 3).reshape(b, c, h, w)
        return self.proj_out(out).add_(x)


class DownSample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Asymmetric padding (right and bottom only), as latent diffusion does.
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class UpSample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _MidBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


def _down_levels(config: AutoencoderConfig) -> nn.ModuleList:
    """The encoders' down path: per level, ResNet blocks then a down-sampling conv."""
    levels = nn.ModuleList()
    channels = config.channels
    count = len(config.channel_multipliers)
    for i, level_channels in enumerate(config.level_channels):
        level = nn.Module()
        level.block = nn.ModuleList()
        for _ in range(config.n_resnet_blocks):
            level.block.append(ResnetBlock(channels, level_channels))
            channels = level_channels
        level.downsample = DownSample(channels) if i != count - 1 else nn.Identity()
        levels.append(level)
    return levels


class Encoder(nn.Module):
    """kl-f8's encoder: image -> 2 * z_channels moments at 1/8 scale."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        top = config.level_channels[-1]
        self.conv_in = nn.Conv2d(config.in_channels, config.channels, 3, padding=1)
        self.down = _down_levels(config)
        self.mid = _MidBlock(top)
        self.norm_out = _norm(top)
        self.conv_out = nn.Conv2d(top, 2 * config.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for level in self.down:
            for block in level.block:
                x = block(x)
            x = level.downsample(x)
        x = self.mid(x)
        return self.conv_out(F.silu(self.norm_out(x), inplace=True))


class ConditionalEncoder(nn.Module):
    """Reads the shaded page; returns one projected feature map per level, finest first."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.conv_in = nn.Conv2d(config.in_channels, config.channels, 3, padding=1)
        self.down = _down_levels(config)
        self.proj = nn.ModuleList(nn.Conv2d(c, c, 1) for c in config.level_channels)
        for proj in self.proj:  # zero-init as trained; the checkpoint overwrites it
            nn.init.zeros_(proj.weight)
            nn.init.zeros_(proj.bias)

    def forward(self, cond: torch.Tensor) -> list[torch.Tensor]:
        x = self.conv_in(cond)
        projections = []
        for level, proj in zip(self.down, self.proj, strict=True):
            for block in level.block:
                x = block(x)
            projections.append(proj(x))
            x = level.downsample(x)
        return projections


class ConditionalDecoder(nn.Module):
    """kl-f8's decoder plus the conditional encoder's projections, level by level."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        levels = config.level_channels
        channels = levels[-1]
        self.conv_in = nn.Conv2d(config.z_channels, channels, 3, padding=1)
        self.mid = _MidBlock(channels)
        # up[i] works at level i (up[0] is the finest), as in the checkpoint.
        up = []
        for i in reversed(range(len(levels))):
            level = nn.Module()
            level.block = nn.ModuleList()
            for _ in range(config.n_resnet_blocks + 1):
                level.block.append(ResnetBlock(channels, levels[i]))
                channels = levels[i]
            level.upsample = UpSample(channels) if i != 0 else nn.Identity()
            up.insert(0, level)
        self.up = nn.ModuleList(up)
        self.norm_out = _norm(channels)
        self.conv_out = nn.Conv2d(channels, config.out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor, conds: list[torch.Tensor]) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for level, cond in reversed(list(zip(self.up, conds, strict=True))):
            for block in level.block:
                h = block(h)
            h = level.upsample(h.add_(cond))
        return self.conv_out(F.silu(self.norm_out(h), inplace=True))


class AlignmentVAE(nn.Module):
    """Rough colours + shaded page -> colours aligned to the line art, all in [-1, 1]."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.quant_conv = nn.Conv2d(2 * config.z_channels, 2 * config.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(config.embed_dim, config.z_channels, 1)
        self.cond_encoder = ConditionalEncoder(config)
        self.cond_decoder = ConditionalDecoder(config)

    def encode(self, rough: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance (clamped as in training) of the rough colours."""
        mean, logvar = torch.chunk(self.quant_conv(self.encoder(rough)), 2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def condition(self, shaded: torch.Tensor) -> list[torch.Tensor]:
        return self.cond_encoder(shaded)

    def decode(self, z: torch.Tensor, conds: list[torch.Tensor]) -> torch.Tensor:
        return self.cond_decoder(self.post_quant_conv(z), conds)

    def forward(self, rough: torch.Tensor, shaded: torch.Tensor) -> torch.Tensor:
        """The deterministic path: decode the posterior mean."""
        mean, _ = self.encode(rough)
        return self.decode(mean, self.condition(shaded))
