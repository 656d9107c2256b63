"""Tiny stand-ins for Style2Paints V4.5's converted networks, and a stand-in converter.

They keep the interface of `inknhue.networks.keras.load(...)`'s modules (NHWC float tensors
in, one per model input, a list of NHWC outputs back) and the shapes the provider relies
on, with fixed weights that make the pipeline's effects visible:
- tail: 2 n + 2 px out for n in (a ConvTranspose2d, kernel 4, stride 2), as the real tail's
  output must be for the original's cut of 41 px to leave twice the tile; each input pixel
  is copied to the 2x2 block that the cut keeps;
- reader: two feature maps (4 and 8 channels), so the head gets two vectors;
- head and neck: spread each hint colour over 31 px (a box average of the hinted
  pixels), white where no hint reaches, tinted a little by the reference's vectors, the
  lines (the head's sketch input; the neck's grey input) dark; colours encoded as the real
  ones are (BGR in VGG's mean-subtracted, channel-reversed form); the head answers at half
  the resolution, as the original's resize of its output allows.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

VGG_MEANS = torch.tensor([103.939, 116.779, 123.68])


def nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


class Tail(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.ConvTranspose2d(3, 3, 4, stride=2, bias=False)
        taps = torch.tensor([0.0, 1.0, 1.0, 0.0])
        with torch.no_grad():
            self.up.weight.zero_()
            for c in range(3):
                self.up.weight[c, c] = taps[:, None] * taps[None, :]

    def forward(self, x):
        return [nhwc(self.up(nchw(x)))]


class Reader(nn.Module):
    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(45)
        self.first = nn.Conv2d(3, 4, 3, padding=1)
        self.second = nn.Conv2d(4, 8, 3, padding=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.3)

    def forward(self, x):
        a = torch.relu(self.first(nchw(x)))
        b = torch.relu(self.second(F.avg_pool2d(a, 2)))
        return [nhwc(a), nhwc(b)]


def box(x: torch.Tensor, size: int = 31) -> torch.Tensor:
    """The mean over a size x size box cut at the edges (two 1-D passes)."""
    x = F.avg_pool2d(x, (size, 1), stride=1, padding=(size // 2, 0), count_include_pad=False)
    return F.avg_pool2d(x, (1, size), stride=1, padding=(0, size // 2), count_include_pad=False)


class Colouring(nn.Module):
    """Head (sketch first input, output at half size) or neck (grey first input, full size)."""

    def __init__(self, neck: bool):
        super().__init__()
        self.neck = neck
        generator = torch.Generator().manual_seed(46)
        self.tint = nn.Linear(12, 3)
        with torch.no_grad():
            for p in self.tint.parameters():
                p.copy_(torch.randn(p.shape, generator=generator))

    def forward(self, first, hints, features, more):
        hints = nchw(hints)
        mask = (hints.abs().sum(1, keepdim=True) > 0).float()
        colour = (hints + 1.0) * 0.5 * mask
        spread, reach = box(colour), box(mask)
        weight = (reach * 20).clamp(0, 1)
        bgr = weight * spread / reach.clamp(min=1e-6) + (1 - weight)
        tint = torch.tanh(self.tint(torch.cat([features, more], 1))) * 0.05
        bgr = (bgr + tint[:, :, None, None]).clamp(0, 1)
        ink = nchw(first)
        if self.neck:
            ink = ((ink - 0.5) * 2).clamp(0, 1)
        bgr = bgr * (1 - ink)
        if not self.neck:
            bgr = F.avg_pool2d(bgr, 2)
        raw = nhwc(bgr * 255.0).flip(-1) - VGG_MEANS.to(bgr)
        return [raw[..., :1] * 0, raw[..., :2] * 0, raw]


def standins() -> dict[str, nn.Module]:
    return {"tail": Tail(), "reader": Reader(), "head": Colouring(neck=False), "neck": Colouring(neck=True)}


def fake_keras(networks: dict[str, nn.Module] | None = None, converted: list | None = None) -> types.ModuleType:
    """A stand-in for `inknhue.networks.keras` and its converter `inknhue.weights.convert.keras_h5`:
    `convert` writes a small file naming the network (and a JSON graph beside it) and records
    the call; `load` gives the stand-in by file name."""
    networks = networks if networks is not None else standins()
    calls = converted if converted is not None else []
    module = types.ModuleType("inknhue.networks.keras")

    def convert(src, dst, bilinear=None):
        src, dst = Path(src), Path(dst)
        if not src.read_bytes().startswith(b"\x89HDF"):
            raise ValueError(f"{src} is not an HDF5 file")
        calls.append((src, dst))
        module.bilinear.append(bilinear)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(json.dumps({"network": src.stem}))
        dst.with_suffix(".json").write_text(json.dumps({"graph": src.stem}))

    def load(dst):
        name = json.loads(Path(dst).read_text())["network"]
        return networks[name]

    module.convert, module.load, module.calls, module.bilinear = convert, load, calls, []
    return module


def install(monkeypatch, weights_dir: Path | None = None, networks: dict[str, nn.Module] | None = None):
    """Stand the fake in for `inknhue.networks.keras` and the converter; with weights_dir,
    also put 'converted' files there, so the provider is available."""
    keras = fake_keras(networks)
    monkeypatch.setitem(sys.modules, "inknhue.networks.keras", keras)
    monkeypatch.setitem(sys.modules, "inknhue.weights.convert.keras_h5", keras)
    from inknhue.rough import style2paints

    monkeypatch.setattr(style2paints, "_networks", {})
    if weights_dir is not None:
        from inknhue import weights

        for name in weights.STYLE2PAINTS_NETWORKS:
            target = weights.style2paints_file(weights_dir, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps({"network": name}))
    return keras
