"""Row-band execution of the alignment VAE's high-resolution levels.

At max size 2048 an A4 page is worked at about 6 MP, where one 128-channel float32 tensor
takes 3 GB and the untiled networks hold several at once. Here the levels at full and half
resolution run in bands of rows instead, keeping only the tensors that must outlive a pass.

Why it is exact: at those levels every operation is local in the rows (3x3 and 1x1
convolutions, SiLU, nearest up-sampling, the stride-2 down-sampling) except GroupNorm,
whose mean and variance are over the whole tensor. So each GroupNorm's statistics are
gathered first, over the whole tensor band by band (per-band moments combined in float64),
and the local operations then run on a band plus the rows their kernels reach beyond it
(a halo), with a convolution's zero padding added only at the tensor's true edges. The
results differ from the untiled path only by floating-point rounding (and the order of
sums: statistics in float64, `UpConv`'s summed taps).

A tensor is described lazily, as a graph of `Node`s whose rows are computed on demand;
`sweep` runs a graph band by band, storing outputs and gathering statistics. What is kept
and what is recomputed is the plan's choice: a lean plan (large pages in float32) keeps
one full-resolution tensor at a time, and keeps the conditional encoder's banded
projections only as their recipes, from the shaded page or the stored half-resolution
features, with their statistics (`Recomputed`): the decoder recomputes their rows when it
adds them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime.host_memory import give_back_freed_memory
from ..runtime.progress import count_convolution
from .alignment import LOGVAR_RANGE, AlignmentVAE, ConditionalDecoder, ConditionalEncoder, Encoder

#: levels run in bands: full and half resolution (the coarser ones are small, and the
#: mid block's attention is global)
BANDED_LEVELS = 2
#: full-resolution `channels`-wide tensors alive at once when intermediates are kept:
#: the decoder's level 0 (its input, hidden and shortcut, the conditions); lean keeps 2.1
KEPT_PEAK = 4.5
#: the untiled VAE's peak in full-resolution `channels`-wide tensors (measured: 9.4 at max
#: size 2048 in bf16 on an H100, 7.8 at 1536 in float32 on a CPU), plus a margin
UNTILED_PEAK = 10.0
UNTILED_MARGIN = 1 << 30


@dataclass(frozen=True)
class Banding:
    """The engine's choice between the untiled VAE (the reference) and row bands."""

    enabled: bool | None = None   #: None: band working sizes of at least `min_pixels`
    min_pixels: int = 1 << 20     #: A4 at max size 768 (0.84 MP) runs untiled, as before
    band_bytes: int = 128 << 20   #: about (up to twice) the temporaries of one band
    band_rows: int | None = None  #: a fixed band height instead (tests)
    lean: bool | None = None      #: None: lean when kept intermediates would pass `budget_bytes`
    budget_bytes: int = 6 << 30   #: for the VAE's full-resolution tensors (8 GiB less the rest)

    def plan(self, height: int, width: int, dtype: torch.dtype, channels: int, levels: int,
             memory_format: torch.memory_format = torch.contiguous_format,
             free_bytes: int | None = None) -> BandPlan | None:
        """The plan for a height x width image (full resolution), or None: run untiled.
        `free_bytes`: the device's free memory where it is known (a GPU): a device with room
        for the untiled networks runs them (bands cost 1.3x to 1.7x the decoder's work)."""
        full = height * width * channels * (torch.finfo(dtype).bits // 8)
        enabled = self.enabled
        if enabled is None:
            room = free_bytes is not None and UNTILED_PEAK * full + UNTILED_MARGIN <= free_bytes
            enabled = height * width >= self.min_pixels and not room
        if not enabled or levels <= BANDED_LEVELS:
            return None
        lean = self.lean if self.lean is not None else KEPT_PEAK * full > self.budget_bytes
        return BandPlan(self.band_bytes, self.band_rows, lean, memory_format)


# --- statistics ---------------------------------------------------------------------------

def _host(tensor: torch.Tensor) -> torch.Tensor:
    """On the CPU; meta tensors stay meta (progress.py plans a pass's work on them)."""
    return tensor if tensor.is_meta else tensor.cpu()


class Moments:
    """Per-channel mean and variance of a tensor, gathered band by band.

    Each chunk of pixels' moments come from `torch.var_mean` (Welford); chunks, then a
    group's channels, are combined with Chan's formula in float64.
    """

    def __init__(self):
        self._parts: list[tuple[int, torch.Tensor]] = []

    def add(self, band: torch.Tensor) -> None:
        # pixels x channels (a view of a channels-last band), in chunks: 2.5x faster than
        # reducing the 4-d band
        pixels = band.permute(0, 2, 3, 1).reshape(-1, band.shape[1])
        for chunk in pixels.split(1 << 15):
            var, mean = torch.var_mean(chunk.float(), dim=0, correction=0)
            self._parts.append((chunk.shape[0], torch.stack([mean, var])))

    def group_norm(self, norm: nn.GroupNorm) -> tuple[torch.Tensor, torch.Tensor]:
        """GroupNorm with these statistics as a per-channel affine map: (scale, shift)."""
        counts = torch.tensor([n for n, _ in self._parts], dtype=torch.float64)[:, None]
        parts = _host(torch.stack([p for _, p in self._parts])).double()  # MPS has no float64
        means, variances = parts[:, 0], parts[:, 1]
        total = counts.sum()
        mean = (counts * means).sum(0) / total
        m2 = (counts * (variances + (means - mean) ** 2)).sum(0)
        groups = norm.num_groups
        mean, m2 = mean.view(groups, -1), m2.view(groups, -1)
        group_mean = mean.mean(1, keepdim=True)
        group_var = (m2 + total * (mean - group_mean) ** 2).sum(1, keepdim=True) / (total * mean.shape[1])
        rstd = (group_var + norm.eps).rsqrt().expand_as(mean).reshape(-1)
        scale = _host(norm.weight).double() * rstd
        shift = _host(norm.bias).double() - group_mean.expand_as(mean).reshape(-1) * scale
        device = norm.weight.device
        return (scale.float().view(1, -1, 1, 1).to(device), shift.float().view(1, -1, 1, 1).to(device))


# --- lazy tensors -----------------------------------------------------------------------

class Node:
    """An N x C x H x W tensor defined row by row: `compute(r0, r1, rows_of)` gives rows
    [r0, r1), reading its inputs through `rows_of(node, a, b)`."""

    inputs: tuple[Node, ...] = ()

    def __init__(self, shape: tuple[int, int, int, int], dtype: torch.dtype, device: torch.device):
        self.shape, self.dtype, self.device = tuple(shape), dtype, device

    @property
    def height(self) -> int:
        return self.shape[2]

    def reach(self, r0: int, r1: int) -> tuple[int, int]:
        """The rows of the inputs that rows [r0, r1) read (before clipping to the edges)."""
        return r0, r1

    def compute(self, r0: int, r1: int, rows_of) -> torch.Tensor:
        raise NotImplementedError


class Stored(Node):
    """A tensor in memory. While a sweep writes over it, rows that later bands still read
    are kept aside (`keep`)."""

    def __init__(self, tensor: torch.Tensor):
        super().__init__(tensor.shape, tensor.dtype, tensor.device)
        self.tensor = tensor
        self._kept: tuple[int, torch.Tensor] | None = None

    def compute(self, r0, r1, rows_of=None):
        if self._kept is not None:
            k0, kept = self._kept
            k1 = k0 + kept.shape[2]
            if r0 < k1:
                assert r0 >= k0, "rows written over before they were kept"
                head = kept[:, :, r0 - k0:min(r1, k1) - k0]
                return head if r1 <= k1 else torch.cat([head, self.tensor[:, :, k1:r1]], 2)
        return self.tensor[:, :, r0:r1]

    def keep(self, r0: int, r1: int) -> None:
        self._kept = (r0, self.compute(r0, r1).clone()) if r0 < r1 else None


def _format(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


def _pad_rows(x: torch.Tensor, top: int, bottom: int) -> torch.Tensor:
    return F.pad(x, (0, 0, top, bottom)) if top or bottom else x


class Conv(Node):
    """A stride-1 convolution with 'same' zero padding (3x3 or 1x1)."""

    def __init__(self, source: Node, conv: nn.Conv2d):
        n, _, h, w = source.shape
        super().__init__((n, conv.out_channels, h, w), source.dtype, source.device)
        self.inputs, self.conv, self.pad = (source,), conv, conv.kernel_size[0] // 2

    def reach(self, r0, r1):
        return r0 - self.pad, r1 + self.pad

    def compute(self, r0, r1, rows_of):
        p, height = self.pad, self.inputs[0].height
        a, b = max(r0 - p, 0), min(r1 + p, height)
        x = _pad_rows(rows_of(self.inputs[0], a, b), a - (r0 - p), (r1 + p) - b)
        y = F.conv2d(x, self.conv.weight, self.conv.bias, padding=(0, p))
        count_convolution(self.conv, y)
        return y


class Down(Node):
    """DownSample: zero row and column after the last, then a 3x3 stride-2 convolution."""

    def __init__(self, source: Node, conv: nn.Conv2d):
        n, _, h, w = source.shape
        super().__init__((n, conv.out_channels, (h - 2) // 2 + 1, (w - 2) // 2 + 1),
                         source.dtype, source.device)
        self.inputs, self.conv = (source,), conv

    def reach(self, r0, r1):
        return 2 * r0, 2 * r1 + 1

    def compute(self, r0, r1, rows_of):
        b = min(2 * r1 + 1, self.inputs[0].height)
        x = F.pad(rows_of(self.inputs[0], 2 * r0, b), (0, 1, 0, 2 * r1 + 1 - b))
        y = F.conv2d(x, self.conv.weight, self.conv.bias, stride=2)
        count_convolution(self.conv, y)
        return y


class Up(Node):
    """Nearest-neighbour up-sampling by 2."""

    def __init__(self, source: Node):
        n, c, h, w = source.shape
        super().__init__((n, c, 2 * h, 2 * w), source.dtype, source.device)
        self.inputs = (source,)

    def reach(self, r0, r1):
        return r0 // 2, (r1 + 1) // 2

    def compute(self, r0, r1, rows_of):
        a, b = self.reach(r0, r1)
        y = F.interpolate(rows_of(self.inputs[0], a, b), scale_factor=2.0, mode="nearest")
        return y[:, :, r0 - 2 * a:r1 - 2 * a]


class UpConv(Node):
    """UpSample: a 3x3 'same' convolution of the nearest 2x up-sampled input, computed
    from the input: each output phase (row and column parity) reads a 2x2 window of it
    with the taps that land on the same input pixel summed, 4/9 of the work. Equal up to
    float32 rounding; for bf16, whose summed taps would round, the engine keeps Up + Conv."""

    def __init__(self, source: Node, conv: nn.Conv2d):
        n, _, h, w = source.shape
        super().__init__((n, conv.out_channels, 2 * h, 2 * w), source.dtype, source.device)
        self.inputs, self.conv = (source,), conv
        k = conv.weight
        # output parity 0 reads input offsets (-1, 0) with taps (0, 1 + 2); parity 1 (0, +1) with (0 + 1, 2)
        pairs = (lambda t: (t[0], t[1] + t[2]), lambda t: (t[0] + t[1], t[2]))
        phases = []
        for rows in pairs:
            r = torch.stack(rows(k.unbind(2)), 2)  # O x I x 2 x 3
            for cols in pairs:
                phases.append(torch.stack(cols(r.unbind(3)), 3))  # O x I x 2 x 2
        # one convolution for the four phases, stacked on the output channels: (p, q) = (0, 0), (0, 1), ...
        self.weight = torch.cat(phases, 0).contiguous(memory_format=_format(k))
        self.bias = None if conv.bias is None else conv.bias.repeat(4)

    def reach(self, r0, r1):
        return r0 // 2 - 1, (r1 - 1) // 2 + 2

    def compute(self, r0, r1, rows_of):
        height = self.inputs[0].height
        i0, i1 = r0 // 2, (r1 - 1) // 2 + 1  # input rows whose both output rows are made
        a, b = max(i0 - 1, 0), min(i1 + 1, height)
        x = F.pad(rows_of(self.inputs[0], a, b), (1, 1, a - (i0 - 1), (i1 + 1) - b))
        y = F.conv2d(x, self.weight, self.bias)  # 4C x (i1 - i0 + 1) x (W + 1)
        n, c, _, width = self.shape
        out = torch.empty((n, c, 2 * (i1 - i0), width), dtype=y.dtype, device=y.device, memory_format=_format(y))
        for phase, (p, q) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            out[:, :, p::2, q::2] = y[:, phase * c:(phase + 1) * c, p:p + i1 - i0, q:q + width // 2]
        out = out[:, :, r0 - 2 * i0:r1 - 2 * i0]
        count_convolution(self.conv, out)  # the work of the convolution these phases stand for
        return out


class NormSiLU(Node):
    """SiLU(GroupNorm(x)) with the whole tensor's statistics, rounded as the untiled ops round."""

    def __init__(self, source: Node, norm: nn.GroupNorm, moments: Moments):
        super().__init__(source.shape, source.dtype, source.device)
        self.inputs = (source,)
        self.scale, self.shift = moments.group_norm(norm)

    def compute(self, r0, r1, rows_of):
        x = rows_of(self.inputs[0], r0, r1)
        y = torch.addcmul(self.shift, x.float(), self.scale).to(x.dtype)
        return F.silu(y, inplace=True)


class Add(Node):
    def __init__(self, a: Node, b: Node):
        assert a.shape == b.shape, (a.shape, b.shape)
        super().__init__(a.shape, a.dtype, a.device)
        self.inputs = (a, b)

    def compute(self, r0, r1, rows_of):
        return rows_of(self.inputs[0], r0, r1) + rows_of(self.inputs[1], r0, r1)


# --- running graphs band by band --------------------------------------------------------

class _Band(nn.Module):
    """Called once per band: a module call, so hooks that stop a cancelled job see bands
    (pipeline._interruptible) as they see layers."""

    def forward(self) -> None:
        return None


_band_step = _Band()


def _topological(roots: list[Node]) -> list[Node]:
    """Sources before their users. Iterative: a recursive closure would be a reference
    cycle, keeping every tensor of the graph until the garbage collector runs."""
    order, seen = [], set()
    stack = [(root, False) for root in reversed(roots)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif id(node) not in seen:
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((source, False) for source in reversed(node.inputs))
    return order


def _needs(order: list[Node], roots: list[Node], r0: int, r1: int) -> dict[int, tuple[int, int]]:
    """Rows of every node that rows [r0, r1) of the roots read (one union per node)."""
    need = {id(root): (r0, r1) for root in roots}
    for node in reversed(order):  # consumers before their sources
        a, b = node.reach(*need[id(node)])
        for source in node.inputs:
            lo, hi = max(a, 0), min(b, source.height)
            if id(source) in need:
                lo, hi = min(lo, need[id(source)][0]), max(hi, need[id(source)][1])
            need[id(source)] = (lo, hi)
    return need


def _releases(order: list[Node], roots: list[Node]) -> list[list[int]]:
    """For each step of `order`, the band values no longer needed once it is computed."""
    last_use = {id(source): i for i, node in enumerate(order) for source in node.inputs}
    releases: list[list[int]] = [[] for _ in order]
    for key, i in last_use.items():
        if all(key != id(root) for root in roots):
            releases[i].append(key)
    return releases


def _evaluate(order: list[Node], roots: list[Node], r0: int, r1: int) -> list[torch.Tensor]:
    need = _needs(order, roots, r0, r1)
    values: dict[int, tuple[int, torch.Tensor]] = {}

    def rows_of(node, a, b):
        start, value = values[id(node)]
        return value[:, :, a - start:b - start]

    for node, released in zip(order, _releases(order, roots), strict=True):
        a, b = need[id(node)]  # each node once, over the union of the rows its users read
        values[id(node)] = (a, node.compute(a, b, rows_of))
        for key in released:  # band temporaries go as soon as their users are done
            del values[key]
    return [rows_of(root, r0, r1) for root in roots]


def _bytes_per_row(order: list[Node], roots: list[Node]) -> float:
    """The most band memory alive at once, per row of the roots (stored inputs are views)."""
    height = roots[0].height
    size = {id(n): 0.0 if isinstance(n, Stored) else
            n.shape[1] * n.shape[3] * n.height / height * torch.finfo(n.dtype).bits / 8 for n in order}
    live = peak = 0.0
    for node, released in zip(order, _releases(order, roots), strict=True):
        live += size[id(node)]
        peak = max(peak, live)
        live -= sum(size[key] for key in released)
    return peak


@dataclass(frozen=True)
class BandPlan:
    """How one image runs in bands: their height (from a memory budget, or fixed) and
    whether full-resolution intermediates are recomputed rather than kept (`lean`)."""

    band_bytes: int = 128 << 20
    band_rows: int | None = None
    lean: bool = False
    memory_format: torch.memory_format = torch.contiguous_format

    def rows(self, order: list[Node], roots: list[Node]) -> int:
        height = roots[0].height
        if self.band_rows:
            return min(self.band_rows, height)
        # 1.5: what the operations make on the way (padded copies, up-sampled rows, halos)
        per_row = 1.5 * _bytes_per_row(order, roots)
        return max(1, min(height, int(self.band_bytes // max(per_row, 1.0))))

    def empty(self, node: Node) -> torch.Tensor:
        return torch.empty(node.shape, dtype=node.dtype, device=node.device, memory_format=self.memory_format)


def sweep(plan: BandPlan, roots: list[Node], *, store=None, over=None, stats=None):
    """Run `roots` (all of one height) band by band.

    store[i]: keep root i in a tensor (a new one, or `over[i]`'s, a `Stored` input that is
    not needed afterwards: rows that later bands read are kept aside before being written
    over). stats[i]: gather root i's `Moments`. Returns (stored or None, moments or None) per root.
    """
    count = len(roots)
    store = store or [True] * count
    over = over or [None] * count
    stats = stats or [False] * count
    height = roots[0].height
    assert all(root.height == height for root in roots)
    order = _topological(roots)
    rows = plan.rows(order, roots)
    outputs = [(o.tensor if o is not None else plan.empty(r)) if s else None
               for r, s, o in zip(roots, store, over, strict=True)]
    moments = [Moments() if s else None for s in stats]
    for r0 in range(0, height, rows):
        r1 = min(r0 + rows, height)
        _band_step()
        values = _evaluate(order, roots, r0, r1)
        written_over = [o for o in over if o is not None]
        if written_over and r1 < height:
            following = _needs(order, roots, r1, min(r1 + rows, height))
            for leaf in written_over:
                leaf.keep(following.get(id(leaf), (r1, r1))[0], r1)
        for value, output, moment in zip(values, outputs, moments, strict=True):
            if moment is not None:
                moment.add(value)
            if output is not None:
                output[:, :, r0:r1].copy_(value)
        del values
    for leaf in over:
        if leaf is not None:
            leaf._kept = None
    give_back_freed_memory()  # the temporaries of many band sizes: at 2048, half a GiB
    return [(Stored(t) if t is not None else None, m) for t, m in zip(outputs, moments, strict=True)]


def gather(plan: BandPlan, node: Node) -> Moments:
    return sweep(plan, [node], store=[False], stats=[True])[0][1]


def store(plan: BandPlan, node: Node, *, over: Stored | None = None, stats: bool = True):
    return sweep(plan, [node], over=[over], stats=[stats])[0]


class Recomputed:
    """A conditional-encoder projection kept as its recipe (the shaded page and the
    GroupNorm statistics) instead of its values; the decoder recomputes it band by band."""

    def __init__(self, node: Node, plan: BandPlan):
        self.node, self.plan = node, plan
        self.shape = torch.Size(node.shape)

    @property
    def nbytes(self) -> int:
        leaves = [n for n in _topological([self.node]) if isinstance(n, Stored)]
        return sum(n.tensor.element_size() * n.tensor.numel() for n in leaves)

    def materialise(self) -> torch.Tensor:
        return store(self.plan, self.node, stats=False)[0].tensor


def as_node(cond) -> Node:
    return cond.node if isinstance(cond, Recomputed) else Stored(cond)


def as_tensor(cond) -> torch.Tensor:
    return cond.materialise() if isinstance(cond, Recomputed) else cond


# --- the networks' levels --------------------------------------------------------------

def _resnet(plan: BandPlan, block, x: Node, x_moments: Moments, *, lean: bool, extra: Node | None = None,
            keep_input: bool = False):
    """A ResnetBlock, x -> shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x)))))) [+ extra].

    Returns the output as a lazy node, the stored tensor it may be written over (or None),
    and the hidden tensor's statistics. The hidden tensor is kept unless `lean` and x is
    stored (then it is recomputed with the output, a second halo row deep); a lazy x with
    a 1x1 shortcut also keeps the shortcut unless `lean`. A stored x is written over unless
    `keep_input`.
    """
    hidden = Conv(NormSiLU(x, block.norm1, x_moments), block.conv1)
    shortcut = x if isinstance(block.nin_shortcut, nn.Identity) else Conv(x, block.nin_shortcut)
    stored_x = isinstance(x, Stored)
    if stored_x and lean:
        hidden_moments = gather(plan, hidden)
        dest = x if x.shape == hidden.shape and not keep_input else None
    elif not stored_x and not lean and shortcut is not x:
        (hidden, hidden_moments), (shortcut, _) = sweep(plan, [hidden, shortcut], stats=[True, False])
        dest = shortcut
    else:
        hidden, hidden_moments = store(plan, hidden)
        dest = x if stored_x and x.shape == hidden.shape and not keep_input else hidden
    out = Add(shortcut, Conv(NormSiLU(hidden, block.norm2, hidden_moments), block.conv2))
    if extra is not None:
        out = Add(out, extra)
    return out, dest, hidden_moments


def _block_recipe(block, x: Node, x_moments: Moments, hidden_moments: Moments) -> Node:
    """A ResnetBlock as a lazy node with known statistics: nothing stored, all recomputed."""
    hidden = Conv(NormSiLU(x, block.norm1, x_moments), block.conv1)
    shortcut = x if isinstance(block.nin_shortcut, nn.Identity) else Conv(x, block.nin_shortcut)
    return Add(shortcut, Conv(NormSiLU(hidden, block.norm2, hidden_moments), block.conv2))


def _down_path(plan: BandPlan, net: Encoder | ConditionalEncoder, image: torch.Tensor,
               projections: list | None) -> torch.Tensor:
    """An encoder's banded levels; returns the first unbanded level's input. With
    `projections`, appends each banded level's projection: in a lean plan as a
    `Recomputed`, its recipe from the level's input (the image, the stored level-1 input)."""
    x: Node = Conv(Stored(image), net.conv_in)  # 3 channels in: recomputed, never stored
    x_moments = gather(plan, x)
    for i, level in enumerate(net.down[:BANDED_LEVELS]):
        recipe = x if projections is not None and plan.lean else None
        blocks = list(level.block)
        for j, block in enumerate(blocks):
            out, dest, hidden_moments = _resnet(plan, block, x, x_moments, lean=plan.lean and i == 0,
                                                keep_input=x is recipe)
            if recipe is not None:
                recipe = _block_recipe(block, recipe, x_moments, hidden_moments)
            last = j == len(blocks) - 1
            if not last or (projections is not None and recipe is None):  # else: into the down-sampling
                out, x_moments = store(plan, out, over=dest, stats=not last)
            x = out
            del out, dest
        if projections is not None:
            projections.append(Recomputed(Conv(recipe, net.proj[i]), plan) if recipe is not None else
                               store(plan, Conv(x, net.proj[i]), stats=False)[0].tensor)
        recipe = None
        x, x_moments = store(plan, Down(x, level.downsample.conv), stats=i < BANDED_LEVELS - 1)
    return x.tensor


def encode(plan: BandPlan, vae: AlignmentVAE, rough: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """AlignmentVAE.encode with the encoder's high-resolution levels in bands."""
    net = vae.encoder
    x = _down_path(plan, net, rough, None)
    for level in net.down[BANDED_LEVELS:]:
        for block in level.block:
            x = block(x)
        x = level.downsample(x)
    x = net.mid(x)
    x = net.conv_out(F.silu(net.norm_out(x)))
    mean, logvar = torch.chunk(vae.quant_conv(x), 2, dim=1)
    return mean, logvar.clamp(*LOGVAR_RANGE)


def condition(plan: BandPlan, vae: AlignmentVAE, shaded: torch.Tensor) -> list:
    """AlignmentVAE.condition with the high-resolution levels in bands."""
    net = vae.cond_encoder
    projections: list = []
    x = _down_path(plan, net, shaded, projections)
    for i in range(BANDED_LEVELS, len(net.down)):
        level = net.down[i]
        for block in level.block:
            x = block(x)
        projections.append(net.proj[i](x))
        x = level.downsample(x)
    return projections


def _upsample(x: Node, conv: nn.Conv2d) -> Node:
    # bf16 would round the summed taps of UpConv: there the reference's own two steps
    return UpConv(x, conv) if x.dtype == torch.float32 else Conv(Up(x), conv)


def decode(plan: BandPlan, vae: AlignmentVAE, z: torch.Tensor, conds: list) -> torch.Tensor:
    """AlignmentVAE.decode with the decoder's high-resolution levels in bands."""
    net: ConditionalDecoder = vae.cond_decoder
    h = net.mid(net.conv_in(vae.post_quant_conv(z)))
    for i in reversed(range(BANDED_LEVELS, len(net.up))):
        level = net.up[i]
        for block in level.block:
            h = block(h)
        h = h + as_tensor(conds[i])
        if i > BANDED_LEVELS:
            h = level.upsample(h)
    # level BANDED_LEVELS's up-sampling is banded too: its output is the largest tensor there
    stored = Stored(h)
    del h
    for i in reversed(range(BANDED_LEVELS)):
        lean = plan.lean and i == 0
        x: Node = _upsample(stored, net.up[i + 1].upsample.conv)
        del stored
        x_moments = gather(plan, x)
        blocks = list(net.up[i].block)
        for j, block in enumerate(blocks):
            last = j == len(blocks) - 1
            out, dest, _ = _resnet(plan, block, x, x_moments, lean=lean,
                                   extra=as_node(conds[i]) if last else None)
            del x
            # level 0's last output (plus the condition) is what norm_out normalises
            x, x_moments = store(plan, out, over=dest, stats=not last or i == 0)
            del out, dest
        stored = x
        del x
    out = Conv(NormSiLU(stored, net.norm_out, x_moments), net.conv_out)
    return store(plan, out, stats=False)[0].tensor
