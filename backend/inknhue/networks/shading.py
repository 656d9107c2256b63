"""The shading generator of manga-colorization-v2 (qweasdd), as inkn'hue uses it.

A U-Net-like generator: a frozen SE-ResNeXt feature extractor (Tag2Pix's) reads the
grey page, a small strided encoder (`to0`..`to3`) reads the page plus four hint
channels, and four "tunnels" of ResNeXt bottlenecks decode with pixel shuffles.
It returns the colour image and the guide decoder's output, both in [-1, 1].

Attribute names (and therefore state_dict keys) are those of the released
`shader.ckpt`, which is this module's `state_dict()` saved directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: grey page + hint RGB (in [-1, 1], times the mask) + hint mask
IN_CHANNELS = 5


class SqueezeExcite(nn.Module):
    """Channel attention: global average pool, bottleneck by 16, sigmoid gate."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels // 16, kernel_size=1)
        self.conv2 = nn.Conv2d(channels // 16, channels, kernel_size=1)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv2(F.relu(self.conv1(F.adaptive_avg_pool2d(x, 1)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


def batch_norm_(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """Inference BatchNorm written over its input, bitwise what bn(x) gives: one tensor
    of the block's largest size fewer at once. CPU only, where the aliased `out=` is
    tested; elsewhere the module (GPU memory peaks elsewhere in this network)."""
    if bn.training or x.device.type != "cpu":
        return bn(x)
    unused = x.new_empty(0)
    torch.native_batch_norm(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, False, 0.0, bn.eps,
                            out=(x, unused, unused.clone()))
    return x


class ExtractorBottleneck(nn.Module):
    """SE-ResNeXt bottleneck of the feature extractor (BatchNorm, ReLU, 4x expansion)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, cardinality: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        width = planes * 2
        self.conv1 = nn.Conv2d(in_planes, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1,
                               groups=cardinality, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.selayer = SqueezeExcite(planes * self.expansion)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in place wherever the tensor is the block's own (memory at large sizes)
        out = F.relu_(batch_norm_(self.bn1, self.conv1(x)))
        out = F.relu_(batch_norm_(self.bn2, self.conv2(out)))
        out = batch_norm_(self.bn3, self.conv3(out))
        out = out.mul_(self.selayer.gate(out))
        residual = x if self.downsample is None else batch_norm_(self.downsample[1], self.downsample[0](x))
        return F.relu_(out.add_(residual))


class FeatureExtractor(nn.Module):
    """Tag2Pix's SE-ResNeXt local feature extractor: stem + three stages (3, 4, 6 blocks).

    Returns the stem output and each stage's output (1/2, 1/4, 1/8, 1/16 scale).
    """

    def __init__(self, in_channels: int = 1, cardinality: int = 32, blocks=(3, 4, 6)):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_planes = 64
        for index, (planes, count) in enumerate(zip((64, 128, 256), blocks, strict=True), start=1):
            stride = 1 if index == 1 else 2
            out_planes = planes * ExtractorBottleneck.expansion
            downsample = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_planes),
            )
            layers = [ExtractorBottleneck(in_planes, planes, cardinality, stride, downsample)]
            layers += [ExtractorBottleneck(out_planes, planes, cardinality) for _ in range(count - 1)]
            setattr(self, f"layer{index}", nn.Sequential(*layers))
            in_planes = out_planes

    def forward(self, x: torch.Tensor):
        x1 = F.relu_(batch_norm_(self.bn1, self.conv1(x)))
        x2 = self.layer1(x1)
        x3 = self.layer2(x2)
        x4 = self.layer3(x3)
        return x1, x2, x3, x4


class TunnelBottleneck(nn.Module):
    """ResNeXt bottleneck of the decoder tunnels (AlacGAN): dilated grouped conv, SE gate."""

    def __init__(self, channels: int, cardinality: int, dilation: int = 1):
        super().__init__()
        width = channels // 2
        self.conv_reduce = nn.Conv2d(channels, width, kernel_size=1, bias=False)
        self.conv_conv = nn.Conv2d(width, width, kernel_size=3, padding=dilation,
                                   dilation=dilation, groups=cardinality, bias=False)
        self.conv_expand = nn.Conv2d(width, channels, kernel_size=1, bias=False)
        self.selayer = SqueezeExcite(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu_(self.conv_reduce(x), 0.2)
        out = F.leaky_relu_(self.conv_conv(out), 0.2)
        out = self.conv_expand(out)
        return out.mul_(self.selayer.gate(out)).add_(x)


def _tunnel(in_channels: int, channels: int, dilations, cardinality: int) -> nn.Sequential:
    # Index layout (0 conv, 2 bottlenecks, 3 conv) is fixed by the checkpoint keys.
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, kernel_size=3, padding=1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Sequential(*[TunnelBottleneck(channels, cardinality, d) for d in dilations]),
        nn.Conv2d(channels, channels * 2, kernel_size=3, padding=1),
        nn.PixelShuffle(2),
        nn.LeakyReLU(0.2, inplace=True),
    )


def _down_block(in_channels: int, channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, stride, 1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(channels, channels, 3, 1, 1),
        nn.LeakyReLU(0.2, inplace=True),
    )


class ShadingGenerator(nn.Module):
    """manga-colorization-v2's generator. Input height and width must be multiples of 32."""

    def __init__(self):
        super().__init__()
        self.encoder = FeatureExtractor(in_channels=1)
        self.to0 = _down_block(IN_CHANNELS, 32, stride=1)
        self.to1 = _down_block(32, 64, stride=2)
        self.to2 = _down_block(64, 92, stride=2)
        self.to3 = _down_block(92, 128, stride=2)
        # `to4` and `tunnel1` are in the checkpoint but the forward pass never uses them.
        self.to4 = _down_block(128, 256, stride=2)

        self.deconv_for_decoder = nn.Sequential(
            nn.ConvTranspose2d(256, 128, 3, stride=2, padding=1, output_padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.ConvTranspose2d(128, 64, 3, stride=2, padding=1, output_padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.ConvTranspose2d(64, 32, 3, stride=1, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.ConvTranspose2d(32, 3, 3, stride=1, padding=1),
            nn.Tanh(),
        )

        pyramid = (1, 1, 2, 2, 4, 4, 2, 1)
        self.tunnel4 = _tunnel(1024 + 128, 512, (1,) * 20, cardinality=32)
        self.tunnel3 = _tunnel(512 + 256, 256, pyramid, cardinality=32)
        self.tunnel2 = _tunnel(128 + 256 + 64, 128, pyramid, cardinality=32)
        self.tunnel1 = _tunnel(64 + 32, 64, (1, 2, 4, 2, 1), cardinality=16)

        self.exit = nn.Sequential(
            nn.Conv2d(64 + 32, 32, kernel_size=3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(32, 3, kernel_size=1),
        )

    def forward(self, x: torch.Tensor, guide: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: N x 5 x H x W (page in [0, 1], hints). Returns (colour, guide) in [-1, 1];
        the guide decoder's output only if `guide` (the pipeline uses the colour alone).

        Scales: x0 full; x1, x2 1/2; x3 1/4; x4 and aux 1/8. Each tunnel doubles the scale.
        Each feature map is let go as soon as it is used (memory at large sizes).
        """
        x0 = self.to0(x)
        aux = self.to3(self.to2(self.to1(x0)))
        x1, x2, x3, x4 = self.encoder(x[:, 0:1])

        features = [x4, aux]
        del x4, aux
        out = _run(self.tunnel4, features)
        features = [out, x3]
        del x3
        y = _run(self.tunnel3, features)
        out = self.deconv_for_decoder(out) if guide else None
        features = [y, x2, x1]
        del y, x2, x1
        y = _run(self.tunnel2, features)
        features = [y, x0]
        del y, x0
        return torch.tanh(_run(self.exit, features)), out


def _run(layers: nn.Sequential, inputs: list[torch.Tensor]) -> torch.Tensor:
    """layers(torch.cat(inputs, 1)), letting go of each tensor once used: the inputs once
    concatenated (the caller hands over its only references), each layer's input once the
    layer is done (an nn.Sequential's caller would hold its first input to the end)."""
    x = torch.cat(inputs, 1) if len(inputs) > 1 else inputs[0]
    inputs.clear()
    for layer in layers:
        if isinstance(layer, nn.Sequential):
            held, x = [x], None
            x = _run(layer, held)
        else:
            x = layer(x)
    return x
