"""Keras functional networks run by torch, from a converted graph (JSON) and its weights (safetensors).

`inknhue.weights.convert.keras_h5.convert(src, dst)` turns a whole-model Keras HDF5 file
(e.g. Style2Paints' `*.net`) into `dst.json` (the graph: layers, their normalized configs, the
wiring as Keras's inbound nodes give it, the input and output order) and `dst.safetensors`
(the weights, in torch layout); it is the only module that reads HDF5. `load(dst)` reads
those two files only (JSON and safetensors: no pickle, no code from any file) and returns a
`KerasGraph`, an `nn.Module` whose forward takes NHWC float tensors, one per model input in
the model's input order, and returns a list of NHWC tensors, one per model output.

Only the layer types in `LAYERS` exist here, each one small module with TensorFlow's own
semantics (the converter refuses every other type, naming the layer):

- Conv2D: TF "same" padding is `ceil(n / stride)` outputs with the padding split
  `total // 2` before and the rest after (asymmetric for even kernels or odd sizes at
  stride 2); dilation; groups (tf.keras 2.x). Kernels HWIO become torch's OIHW.
- Conv2DTranspose: the output size is Keras's `deconv_output_length` (with or without
  `output_padding`); the full transposed convolution is cropped by TF's "same" padding of the
  output size, `total // 2` at the start. Kernels HWOI become torch's IOHW.
- BatchNormalization: inference form with the config's epsilon; gamma/beta absent when
  `scale`/`center` are false.
- Dense on the last axis of a tensor of any rank.
- Activation (linear, relu, elu, selu, tanh, sigmoid, softmax over the last axis, softplus,
  softsign), LeakyReLU, PReLU (shared_axes), ReLU (max_value, negative_slope, threshold), ELU,
  Softmax.
- Add, Subtract, Multiply, Average, Maximum, Minimum with Keras's broadcasting: an input of
  lower rank gets new axes at axis 1 until the ranks agree (a (N, C) vector added to an
  (N, H, W, C) map is (N, 1, 1, C)). Concatenate on any axis.
- AveragePooling2D / MaxPooling2D (TF "same": padded cells are left out of the average,
  -inf for the maximum), GlobalAveragePooling2D / GlobalMaxPooling2D (keepdims).
- UpSampling2D nearest, and bilinear by one of TF's two rules: "legacy" (TF <= 1.14 and
  standalone Keras: `tf.image.resize_bilinear` with align_corners and half_pixel_centers
  both false, source = destination * in / out) or "half_pixel" (TF >= 1.15 and 2.x); the
  converter picks it from the file's `keras_version` and records it per layer.
- ZeroPadding2D, Cropping2D (asymmetric), Reshape and Flatten in NHWC order (a Flatten before
  a Dense flattens H, W, C as Keras does), Dropout and SpatialDropout2D (identity), InputLayer.

Inside, a rank-4 tensor is NCHW in torch's logical order, kept in channels_last memory with
channels_last weights (`KerasGraph.memory_format`): on a U-Net of 3x3 convolutions that takes
0.7 to 0.8 times the time of NCHW-contiguous memory on the CPU, and a literal NHWC port that
permutes around every layer 1.5 to 3.4 times (`benchmarks/bench_keras.py`). Every other rank
keeps Keras's axis order. Axes in configs are Keras's and are mapped where a layer uses them.
The inputs are permuted at the start and the outputs at the end.
"""

from __future__ import annotations

import functools
import logging
import math
import operator
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WeightsError
from ..runtime.small_files import FileTooLarge, parse_json, read_small_file
from .nonfinite import nonfinite_tensors, nonfinite_warning

log = logging.getLogger(__name__)

GRAPH_FORMAT = "inknhue-keras-graph"
GRAPH_VERSION = 1
#: the largest graph file load() reads (a 1000-layer model is well under 1 MB)
MAX_GRAPH_BYTES = 64 << 20
#: the most parameters a graph may declare: 1 GiB in float32, 2.5 times Style2Paints V4.5's
#: largest network (412 MB), so that a small file cannot make anyone allocate gigabytes
MAX_PARAMETERS = 1 << 28

ACTIVATIONS = ("linear", "relu", "elu", "selu", "tanh", "sigmoid", "softmax", "softplus", "softsign")
BILINEAR_RULES = ("legacy", "half_pixel")

Shape = tuple  # Keras's axis order, batch first; None where unknown until run time


class GraphError(ValueError):
    """A graph or layer config this runtime does not accept (the caller names the file)."""


# ----------------------------------------------------------------------------- config checks

def _int(value: Any, what: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise GraphError(f"{what} must be an integer >= {low}, got {value!r}")
    return value


def _pair(value: Any, what: str, low: int = 1) -> list[int]:
    if not isinstance(value, list) or len(value) != 2:
        raise GraphError(f"{what} must be two integers, got {value!r}")
    return [_int(v, what, low) for v in value]


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise GraphError(f"{what} must be true or false, got {value!r}")
    return value


def _float(value: Any, what: str, low: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise GraphError(f"{what} must be a number, got {value!r}")
    if low is not None and value < low:
        raise GraphError(f"{what} must be >= {low}, got {value!r}")
    return float(value)


def _choice(value: Any, what: str, choices) -> str:
    if value not in choices:
        raise GraphError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _axis(axis: int, rank: int, what: str = "axis") -> int:
    """A Keras axis (negative counts from the end) as 0..rank-1; the batch axis is refused."""
    if isinstance(axis, bool) or not isinstance(axis, int) or not -rank <= axis < rank:
        raise GraphError(f"{what} {axis!r} does not exist in a rank-{rank} tensor")
    axis %= rank
    if axis == 0:
        raise GraphError(f"{what} 0 is the batch axis")
    return axis


def _internal(axis: int, rank: int) -> int:
    """Keras axis (0..rank-1) -> the axis of the internal layout (NCHW for rank 4)."""
    return (0, 2, 3, 1)[axis] if rank == 4 else axis


def to_keras(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1) if x.dim() == 4 else x


def to_internal(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2) if x.dim() == 4 else x


def _known(*dims) -> bool:
    return all(d is not None for d in dims)


def _rank(shape: Shape, rank: int, layer: str) -> None:
    if len(shape) != rank:
        raise GraphError(f"{layer} takes rank-{rank} inputs, got shape {_show(shape)}")


def _show(shape: Shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _activate(x: torch.Tensor, name: str) -> torch.Tensor:
    if name == "linear":
        return x
    if name == "relu":
        return F.relu(x)
    if name == "elu":
        return F.elu(x)
    if name == "selu":
        return F.selu(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "softmax":  # Keras: the last axis
        return F.softmax(x, dim=1 if x.dim() == 4 else -1)
    if name == "softplus":
        return F.softplus(x)
    if name == "softsign":
        return F.softsign(x)
    raise GraphError(f"activation {name!r} is not supported")


# ----------------------------------------------------------------------------- TF geometry

def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF "SAME": ceil(size / stride) outputs; the padding split total // 2 before, the rest after."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def conv_output_length(size, kernel: int, stride: int, padding: str, dilation: int = 1):
    if size is None:
        return None
    if padding == "same":
        return -(-size // stride)
    effective = (kernel - 1) * dilation + 1
    return (size - effective) // stride + 1 if size >= effective else 0


def deconv_output_length(size, kernel: int, stride: int, padding: str, output_padding, dilation: int = 1):
    """Keras's `conv_utils.deconv_output_length` (and 2.0's `deconv_length`)."""
    if size is None:
        return None
    effective = (kernel - 1) * dilation + 1
    if output_padding is None:
        if padding == "valid":
            return size * stride + max(effective - stride, 0)
        return size * stride
    pad = effective // 2 if padding == "same" else 0
    return (size - 1) * stride + effective - 2 * pad + output_padding


# ----------------------------------------------------------------------------- layers

LAYERS: dict[str, type["KerasLayer"]] = {}


def _register(*names: str):
    def register(cls):
        for name in names:
            LAYERS[name] = cls
        return cls
    return register


class KerasLayer(nn.Module):
    """One Keras layer. `check` validates a normalized config, `infer` gives the output shapes
    for the input shapes, `param_shapes` the torch shapes of its tensors (named as in the
    module's state_dict)."""

    inputs: tuple[int, int | None] = (1, 1)  # least and most inputs

    def __init__(self, config: dict, in_shapes: list[Shape]):
        super().__init__()
        self.config = config

    @classmethod
    def check(cls, config: dict) -> dict:
        if config:
            raise GraphError(f"unexpected config {sorted(config)}")
        return {}

    @classmethod
    def infer(cls, config: dict, in_shapes: list[Shape]) -> list[Shape]:
        return [in_shapes[0]]

    @classmethod
    def param_shapes(cls, config: dict, in_shapes: list[Shape]) -> dict[str, tuple[int, ...]]:
        return {}

    def _make_params(self, in_shapes: list[Shape], buffers: tuple[str, ...] = ()) -> None:
        for name, shape in self.param_shapes(self.config, in_shapes).items():
            tensor = torch.empty(shape)
            if name in buffers:
                self.register_buffer(name, tensor)
            else:
                self.register_parameter(name, nn.Parameter(tensor, requires_grad=False))


def _fields(config: dict, required: tuple[str, ...], optional: dict[str, Any] | None = None) -> dict:
    optional = optional or {}
    unknown = set(config) - set(required) - set(optional)
    if unknown:
        raise GraphError(f"unexpected config {sorted(unknown)}")
    missing = [k for k in required if k not in config]
    if missing:
        raise GraphError(f"config lacks {missing}")
    return {**optional, **config}


@_register("InputLayer")
class InputLayer(KerasLayer):
    inputs = (0, 0)

    @classmethod
    def check(cls, config):
        c = _fields(config, ("shape",))
        shape = c["shape"]
        if not isinstance(shape, list) or len(shape) < 2 or shape[0] is not None:
            raise GraphError(f"input shape must be [null, ...], got {shape!r}")
        return {"shape": [None] + [None if d is None else _int(d, "input dimension") for d in shape[1:]]}

    @classmethod
    def infer(cls, config, in_shapes):
        return [tuple(config["shape"])]


@_register("Conv2D")
class Conv2D(KerasLayer):
    @classmethod
    def check(cls, config):
        c = _fields(config, ("filters", "kernel_size", "strides", "padding", "dilation_rate", "groups",
                             "use_bias", "activation"))
        return {"filters": _int(c["filters"], "filters"), "kernel_size": _pair(c["kernel_size"], "kernel_size"),
                "strides": _pair(c["strides"], "strides"), "padding": _choice(c["padding"], "padding",
                                                                              ("same", "valid")),
                "dilation_rate": _pair(c["dilation_rate"], "dilation_rate"), "groups": _int(c["groups"], "groups"),
                "use_bias": _bool(c["use_bias"], "use_bias"),
                "activation": _choice(c["activation"], "activation", ACTIVATIONS)}

    @classmethod
    def infer(cls, config, in_shapes):
        (shape,) = in_shapes
        _rank(shape, 4, "Conv2D")
        n, h, w, channels = shape
        if channels is None or channels % config["groups"] or config["filters"] % config["groups"]:
            raise GraphError(f"input channels {channels} and filters {config['filters']} must be known "
                             f"multiples of groups {config['groups']}")
        (kh, kw), (sh, sw), (dh, dw) = config["kernel_size"], config["strides"], config["dilation_rate"]
        out = (n, conv_output_length(h, kh, sh, config["padding"], dh),
               conv_output_length(w, kw, sw, config["padding"], dw), config["filters"])
        if 0 in out:
            raise GraphError(f"Conv2D input {_show(shape)} is smaller than its kernel")
        return [out]

    @classmethod
    def param_shapes(cls, config, in_shapes):
        channels = in_shapes[0][3]
        shapes = {"weight": (config["filters"], channels // config["groups"], *config["kernel_size"])}
        if config["use_bias"]:
            shapes["bias"] = (config["filters"],)
        return shapes

    def __init__(self, config, in_shapes):
        super().__init__(config, in_shapes)
        self._make_params(in_shapes)
        if not config["use_bias"]:
            self.bias = None

    def forward(self, x):
        c = self.config
        (kh, kw), (sh, sw), (dh, dw) = c["kernel_size"], c["strides"], c["dilation_rate"]
        padding = (0, 0)
        if c["padding"] == "same":
            top, bottom = same_padding(x.shape[2], kh, sh, dh)
            left, right = same_padding(x.shape[3], kw, sw, dw)
            if top == bottom and left == right:
                padding = (top, left)
            else:
                x = F.pad(x, (left, right, top, bottom))
        x = F.conv2d(x, self.weight, self.bias, (sh, sw), padding, (dh, dw), c["groups"])
        return _activate(x, c["activation"])


@_register("Conv2DTranspose")
class Conv2DTranspose(KerasLayer):
    @classmethod
    def check(cls, config):
        c = _fields(config, ("filters", "kernel_size", "strides", "padding", "output_padding", "dilation_rate",
                             "use_bias", "activation"))
        strides = _pair(c["strides"], "strides")
        output_padding = c["output_padding"]
        if output_padding is not None:
            output_padding = _pair(output_padding, "output_padding", 0)
        dilation = _pair(c["dilation_rate"], "dilation_rate")
        if dilation != [1, 1] and strides != [1, 1]:
            raise GraphError("a transposed convolution with both strides and dilation is not supported")
        return {"filters": _int(c["filters"], "filters"), "kernel_size": _pair(c["kernel_size"], "kernel_size"),
                "strides": strides, "padding": _choice(c["padding"], "padding", ("same", "valid")),
                "output_padding": output_padding, "dilation_rate": dilation,
                "use_bias": _bool(c["use_bias"], "use_bias"),
                "activation": _choice(c["activation"], "activation", ACTIVATIONS)}

    @classmethod
    def infer(cls, config, in_shapes):
        (shape,) = in_shapes
        _rank(shape, 4, "Conv2DTranspose")
        n, h, w, channels = shape
        if channels is None:
            raise GraphError("Conv2DTranspose needs a known number of input channels")
        out_pad = config["output_padding"] or [None, None]
        (kh, kw), (sh, sw), (dh, dw) = config["kernel_size"], config["strides"], config["dilation_rate"]
        return [(n, deconv_output_length(h, kh, sh, config["padding"], out_pad[0], dh),
                 deconv_output_length(w, kw, sw, config["padding"], out_pad[1], dw), config["filters"])]

    @classmethod
    def param_shapes(cls, config, in_shapes):
        shapes = {"weight": (in_shapes[0][3], config["filters"], *config["kernel_size"])}
        if config["use_bias"]:
            shapes["bias"] = (config["filters"],)
        return shapes

    def __init__(self, config, in_shapes):
        super().__init__(config, in_shapes)
        self._make_params(in_shapes)
        if not config["use_bias"]:
            self.bias = None

    def _geometry(self, size: int, axis: int) -> tuple[int, int, int]:
        """(output length, TF's crop at the start, the full transposed convolution's length)."""
        c = self.config
        k, s, d = c["kernel_size"][axis], c["strides"][axis], c["dilation_rate"][axis]
        out_pad = None if c["output_padding"] is None else c["output_padding"][axis]
        out = deconv_output_length(size, k, s, c["padding"], out_pad, d)
        effective = (k - 1) * d + 1
        before = same_padding(out, k, s, d)[0] if c["padding"] == "same" else 0
        return out, before, (size - 1) * s + effective

    def forward(self, x):
        c = self.config
        stride, dilation = tuple(c["strides"]), tuple(c["dilation_rate"])
        out_h, top, full_h = self._geometry(x.shape[2], 0)
        out_w, left, full_w = self._geometry(x.shape[3], 1)
        # torch gives full - 2 * padding + output_padding, starting `padding` into the full result
        extra_h, extra_w = out_h - (full_h - 2 * top), out_w - (full_w - 2 * left)
        limit_h, limit_w = max(stride[0], dilation[0]), max(stride[1], dilation[1])
        if 0 <= extra_h < limit_h and 0 <= extra_w < limit_w:
            y = F.conv_transpose2d(x, self.weight, self.bias, stride, (top, left), (extra_h, extra_w), 1, dilation)
        elif extra_h <= 0 and extra_w <= 0:  # one row or column too many: cut it off the end
            y = F.conv_transpose2d(x, self.weight, self.bias, stride, (top, left), 0, 1, dilation)
            y = y[:, :, :out_h, :out_w]
        else:  # the general case: crop or zero-extend the full result, then the bias
            y = F.conv_transpose2d(x, self.weight, None, stride, 0, 0, 1, dilation)
            y = F.pad(y, (-left, out_w - (full_w - left), -top, out_h - (full_h - top)))
            if self.bias is not None:
                y = y + self.bias[:, None, None]
        return _activate(y, c["activation"])


@_register("BatchNormalization")
class BatchNormalization(KerasLayer):
    @classmethod
    def check(cls, config):
        c = _fields(config, ("axis", "epsilon", "center", "scale"))
        if isinstance(c["axis"], bool) or not isinstance(c["axis"], int):
            raise GraphError(f"axis must be one integer, got {c['axis']!r}")
        return {"axis": c["axis"], "epsilon": _float(c["epsilon"], "epsilon", 0.0),
                "center": _bool(c["center"], "center"), "scale": _bool(c["scale"], "scale")}

    @classmethod
    def infer(cls, config, in_shapes):
        (shape,) = in_shapes
        axis = _axis(config["axis"], len(shape))
        if shape[axis] is None:
            raise GraphError(f"BatchNormalization's axis {config['axis']} has an unknown size")
        return [shape]

    @classmethod
    def param_shapes(cls, config, in_shapes):
        shape = in_shapes[0]
        size = (shape[_axis(config["axis"], len(shape))],)
        shapes = {}
        if config["scale"]:
            shapes["weight"] = size
        if config["center"]:
            shapes["bias"] = size
        shapes["running_mean"] = size
        shapes["running_var"] = size
        return shapes

    def __init__(self, config, in_shapes):
        super().__init__(config, in_shapes)
        self._make_params(in_shapes, buffers=("running_mean", "running_var"))
        for absent in ("weight", "bias"):
            if not hasattr(self, absent):
                setattr(self, absent, None)

    def forward(self, x):
        c = self.config
        dim = _internal(_axis(c["axis"], x.dim()), x.dim())
        if dim == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0,
                                c["epsilon"])
        view = [1] * x.dim()
        view[dim] = -1
        y = (x - self.running_mean.view(view)) * torch.rsqrt(self.running_var.view(view) + c["epsilon"])
        if self.weight is not None:
            y = y * self.weight.view(view)
        if self.bias is not None:
            y = y + self.bias.view(view)
        return y


@_register("Dense")
class Dense(KerasLayer):
    @classmethod
    def check(cls, config):
        c = _fields(config, ("units", "use_bias", "activation"))
        return {"units": _int(c["units"], "units"), "use_bias": _bool(c["use_bias"], "use_bias"),
                "activation": _choice(c["activation"], "activation", ACTIVATIONS)}

    @classmethod
    def infer(cls, config, in_shapes):
        (shape,) = in_shapes
        if len(shape) < 2 or shape[-1] is None:
            raise GraphError(f"Dense needs a known last axis, got {_show(shape)}")
        return [shape[:-1] + (config["units"],)]

    @classmethod
    def param_shapes(cls, config, in_shapes):
        shapes = {"weight": (config["units"], in_shapes[0][-1])}
        if config["use_bias"]:
            shapes["bias"] = (config["units"],)
        return shapes

    def __init__(self, config, in_shapes):
        super().__init__(config, in_shapes)
        self._make_params(in_shapes)
        if not config["use_bias"]:
            self.bias = None

    def forward(self, x):
        if x.dim() == 4:  # NCHW inside: Keras's last axis is dim 1
            y = F.linear(x.movedim(1, -1), self.weight, self.bias).movedim(-1, 1)
        else:
            y = F.linear(x, self.weight, self.bias)
        return _activate(y, self.config["activation"])


@_register("Activation")
class Activation(KerasLayer):
    @classmethod
    def check(cls, config):
        c = _fields(config, ("activation",))
        return {"activation": _choice(c["activation"], "activation", ACTIVATIONS)}

    def forward(self, x):
        return _activate(x, self.config["activation"])


@_register("LeakyReLU")
class LeakyReLU(KerasLayer):
    @classmethod
    def check(cls, config):
        c = _fields(config, ("alpha",))
        return {"alpha": _float(c["alpha"], "alpha")}

    def forward(self, x):
        return F.leaky_relu(x, self.config["alpha"])


@_register("ELU")
class ELU(KerasLayer):
    @classmethod
    def check(cls, config):
        c = _fields(config, ("alpha",))
        return {"alpha": _float(c["alpha"], "alpha")}

    def forward(self, x):
        alpha = self.config["alpha"]
        return F.elu(x, alpha) if alpha >= 0 else torch.where(x > 0, x, alpha * torch.expm1(x))


@_register("ReLU")
class ReLU(KerasLayer):
    @classmethod
    def check(cls, config):
        c = _fields(config, ("max_value", "negative_slope", "threshold"))
        max_value = c["max_value"]
        return {"max_value": None if max_value is None else _float(max_value, "max_value", 0.0),
                "negative_slope": _float(c["negative_slope"], "negative_slope", 0.0),
                "threshold": _float(c["threshold"], "threshold")}

    def forward(self, x):
        c = self.config
        if c["negative_slope"] == 0.0 and c["threshold"] == 0.0:
            y = F.relu(x)
        else:
            y = torch.where(x >= c["threshold"], x, c["negative_slope"] * (x - c["threshold"]))
        return y if c["max_value"] is None else torch.clamp(y, max=c["max_value"])


@_register("Softmax")
class Softmax(KerasLayer):
    @classmethod
    def check(cls, config):
        c = _fields(config, ("axis",))
        if isinstance(c["axis"], bool) or not isinstance(c["axis"], int):
            raise GraphError(f"axis must be one integer, got {c['axis']!r}")
        return {"axis": c["axis"]}

    @classmethod
    def infer(cls, config, in_shapes):
        _axis(config["axis"], len(in_shapes[0]))
        return [in_shapes[0]]

    def forward(self, x):
        return F.softmax(x, dim=_internal(_axis(self.config["axis"], x.dim()), x.dim()))


@_register("PReLU")
class PReLU(KerasLayer):
    @classmethod
    def check(cls, config):
        c = _fields(config, ("shared_axes",))
        shared = c["shared_axes"]
        if shared is not None:
            if not isinstance(shared, list):
                raise GraphError(f"shared_axes must be a list, got {shared!r}")
            shared = sorted({_int(a, "shared axis") for a in shared})
        return {"shared_axes": shared}

    @classmethod
    def param_shapes(cls, config, in_shapes):
        shape = list(in_shapes[0][1:])  # Keras's alpha: the input shape with shared axes 1
        for axis in config["shared_axes"] or []:
            if axis > len(shape):
                raise GraphError(f"shared axis {axis} does not exist in {_show(in_shapes[0])}")
            shape[axis - 1] = 1
        if None in shape:
            raise GraphError(f"PReLU's alpha needs known sizes on unshared axes, got {_show(in_shapes[0])}")
        if len(shape) == 3:  # stored in the internal layout: (C, H, W)
            shape = [shape[2], shape[0], shape[1]]
        return {"alpha": tuple(shape)}

    @classmethod
    def infer(cls, config, in_shapes):
        cls.param_shapes(config, in_shapes)
        return [in_shapes[0]]

    def __init__(self, config, in_shapes):
        super().__init__(config, in_shapes)
        self._make_params(in_shapes)

    def forward(self, x):
        return F.relu(x) - self.alpha * F.relu(-x)


def _broadcast_shapes(shapes: list[Shape], layer: str) -> Shape:
    """Keras's `_Merge` output shape: shapes aligned on the right, 1 and None broadcast."""
    out = shapes[0][1:]
    for shape in shapes[1:]:
        a, b = (out, shape[1:]) if len(out) >= len(shape) - 1 else (shape[1:], out)
        merged = list(a[:len(a) - len(b)])
        for i, j in zip(a[len(a) - len(b):], b, strict=True):
            if i is None or j is None:
                merged.append(None)
            elif i == 1 or j == 1:
                merged.append(j if i == 1 else i)
            elif i != j:
                raise GraphError(f"{layer} cannot broadcast {', '.join(_show(s) for s in shapes)} together")
            else:
                merged.append(i)
        out = tuple(merged)
    return (None,) + tuple(out)


def _same_rank(xs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Keras's merge layers give a lower-rank input new axes at axis 1 (in Keras's order)."""
    rank = max(x.dim() for x in xs)
    out = []
    for x in xs:
        if x.dim() < rank:
            x = to_keras(x)
            for _ in range(rank - x.dim()):
                x = x.unsqueeze(1)
            x = to_internal(x)
        out.append(x)
    return out


class _Merge(KerasLayer):
    inputs = (2, None)

    @classmethod
    def infer(cls, config, in_shapes):
        return [_broadcast_shapes(in_shapes, cls.__name__)]

    def forward(self, *xs):
        return self.merge(_same_rank(list(xs)))


@_register("Add")
class Add(_Merge):
    @staticmethod
    def merge(xs):
        return functools.reduce(operator.add, xs)


@_register("Subtract")
class Subtract(_Merge):
    inputs = (2, 2)

    @staticmethod
    def merge(xs):
        return xs[0] - xs[1]


@_register("Multiply")
class Multiply(_Merge):
    @staticmethod
    def merge(xs):
        return functools.reduce(operator.mul, xs)


@_register("Average")
class Average(_Merge):
    @staticmethod
    def merge(xs):
        return functools.reduce(operator.add, xs) / len(xs)


@_register("Maximum")
class Maximum(_Merge):
    @staticmethod
    def merge(xs):
        return functools.reduce(torch.maximum, xs)


@_register("Minimum")
class Minimum(_Merge):
    @staticmethod
    def merge(xs):
        return functools.reduce(torch.minimum, xs)


@_register("Concatenate")
class Concatenate(KerasLayer):
    inputs = (1, None)

    @classmethod
    def check(cls, config):
        c = _fields(config, ("axis",))
        if isinstance(c["axis"], bool) or not isinstance(c["axis"], int):
            raise GraphError(f"axis must be one integer, got {c['axis']!r}")
        return {"axis": c["axis"]}

    @classmethod
    def infer(cls, config, in_shapes):
        rank = len(in_shapes[0])
        if any(len(s) != rank for s in in_shapes):
            raise GraphError(f"Concatenate needs inputs of one rank, got {', '.join(map(_show, in_shapes))}")
        axis = _axis(config["axis"], rank)
        out = []
        for i in range(rank):
            dims = [s[i] for s in in_shapes]
            if i == axis:
                out.append(sum(dims) if _known(*dims) else None)
            else:
                known = {d for d in dims if d is not None}
                if len(known) > 1:
                    raise GraphError(f"Concatenate on axis {config['axis']}: shapes "
                                     f"{', '.join(map(_show, in_shapes))} differ elsewhere")
                out.append(known.pop() if known else None)
        out[0] = None
        return [tuple(out)]

    def forward(self, *xs):
        rank = xs[0].dim()
        return torch.cat(xs, dim=_internal(_axis(self.config["axis"], rank), rank))


class _Pooling(KerasLayer):
    @classmethod
    def check(cls, config):
        c = _fields(config, ("pool_size", "strides", "padding"))
        return {"pool_size": _pair(c["pool_size"], "pool_size"), "strides": _pair(c["strides"], "strides"),
                "padding": _choice(c["padding"], "padding", ("same", "valid"))}

    @classmethod
    def infer(cls, config, in_shapes):
        (shape,) = in_shapes
        _rank(shape, 4, cls.__name__)
        (kh, kw), (sh, sw) = config["pool_size"], config["strides"]
        out = (None, conv_output_length(shape[1], kh, sh, config["padding"]),
               conv_output_length(shape[2], kw, sw, config["padding"]), shape[3])
        if 0 in out:
            raise GraphError(f"{cls.__name__} input {_show(shape)} is smaller than its window")
        return [out]

    def _pads(self, x) -> tuple[int, int, int, int] | None:
        """(left, right, top, bottom) of TF's "same", or None where no padding is needed."""
        c = self.config
        if c["padding"] != "same":
            return None
        top, bottom = same_padding(x.shape[2], c["pool_size"][0], c["strides"][0])
        left, right = same_padding(x.shape[3], c["pool_size"][1], c["strides"][1])
        return (left, right, top, bottom) if top or bottom or left or right else None


@_register("MaxPooling2D")
class MaxPooling2D(_Pooling):
    def forward(self, x):
        kernel, stride = tuple(self.config["pool_size"]), tuple(self.config["strides"])
        pads = self._pads(x)
        if pads is None:
            return F.max_pool2d(x, kernel, stride)
        left, right, top, bottom = pads
        if left == right and top == bottom:
            return F.max_pool2d(x, kernel, stride, (top, left))  # torch pads with -inf
        return F.max_pool2d(F.pad(x, pads, value=-math.inf), kernel, stride)


@_register("AveragePooling2D")
class AveragePooling2D(_Pooling):
    def forward(self, x):
        kernel, stride = tuple(self.config["pool_size"]), tuple(self.config["strides"])
        pads = self._pads(x)
        if pads is None:
            return F.avg_pool2d(x, kernel, stride)
        left, right, top, bottom = pads
        if left == right and top == bottom:  # TF averages the cells inside the image only
            return F.avg_pool2d(x, kernel, stride, (top, left), count_include_pad=False)
        sums = F.avg_pool2d(F.pad(x, pads), kernel, stride, divisor_override=1)
        ones = torch.ones((1, 1, x.shape[2], x.shape[3]), dtype=x.dtype, device=x.device)
        counts = F.avg_pool2d(F.pad(ones, pads), kernel, stride, divisor_override=1)
        return sums / counts


class _GlobalPooling(KerasLayer):
    @classmethod
    def check(cls, config):
        c = _fields(config, ("keepdims",))
        return {"keepdims": _bool(c["keepdims"], "keepdims")}

    @classmethod
    def infer(cls, config, in_shapes):
        (shape,) = in_shapes
        _rank(shape, 4, cls.__name__)
        return [(None, 1, 1, shape[3]) if config["keepdims"] else (None, shape[3])]


@_register("GlobalAveragePooling2D")
class GlobalAveragePooling2D(_GlobalPooling):
    def forward(self, x):
        return x.mean(dim=(2, 3), keepdim=self.config["keepdims"])


@_register("GlobalMaxPooling2D")
class GlobalMaxPooling2D(_GlobalPooling):
    def forward(self, x):
        return x.amax(dim=(2, 3), keepdim=self.config["keepdims"])


def _bilinear_axis(size: int, out: int, half_pixel: bool, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TF's resize_bilinear weights along one axis (compute_interpolation_weights), in float32."""
    scale = torch.tensor(size, dtype=torch.float32) / torch.tensor(out, dtype=torch.float32)
    index = torch.arange(out, dtype=torch.float32)
    source = (index + 0.5) * scale - 0.5 if half_pixel else index * scale
    floor = torch.floor(source)
    lower = floor.clamp(min=0).long()
    upper = torch.ceil(source).clamp(max=size - 1).long()
    return lower.to(device), upper.to(device), (source - floor).to(device)


@_register("UpSampling2D")
class UpSampling2D(KerasLayer):
    @classmethod
    def check(cls, config):
        c = _fields(config, ("size", "interpolation", "bilinear"))
        interpolation = _choice(c["interpolation"], "interpolation", ("nearest", "bilinear"))
        return {"size": _pair(c["size"], "size"), "interpolation": interpolation,
                "bilinear": _choice(c["bilinear"], "bilinear rule", BILINEAR_RULES)}

    @classmethod
    def infer(cls, config, in_shapes):
        (shape,) = in_shapes
        _rank(shape, 4, "UpSampling2D")
        (fh, fw) = config["size"]
        return [(None, None if shape[1] is None else shape[1] * fh, None if shape[2] is None else shape[2] * fw,
                 shape[3])]

    def forward(self, x):
        fh, fw = self.config["size"]
        n, c, h, w = x.shape
        if self.config["interpolation"] == "nearest":  # exact for integer factors, in both TF eras
            return x[:, :, :, None, :, None].expand(n, c, h, fh, w, fw).reshape(n, c, h * fh, w * fw)
        half_pixel = self.config["bilinear"] == "half_pixel"
        y0, y1, ly = _bilinear_axis(h, h * fh, half_pixel, x.device)
        x0, x1, lx = _bilinear_axis(w, w * fw, half_pixel, x.device)
        lx, ly = lx.to(x.dtype), ly.to(x.dtype)[:, None]
        top, bottom = x[:, :, y0], x[:, :, y1]
        top = top[..., x0] + (top[..., x1] - top[..., x0]) * lx
        bottom = bottom[..., x0] + (bottom[..., x1] - bottom[..., x0]) * lx
        return top + (bottom - top) * ly


def _four(value: Any, what: str) -> list[list[int]]:
    if not isinstance(value, list) or len(value) != 2:
        raise GraphError(f"{what} must be [[top, bottom], [left, right]], got {value!r}")
    return [_pair(v, what, 0) for v in value]


@_register("ZeroPadding2D")
class ZeroPadding2D(KerasLayer):
    @classmethod
    def check(cls, config):
        c = _fields(config, ("padding",))
        return {"padding": _four(c["padding"], "padding")}

    @classmethod
    def infer(cls, config, in_shapes):
        (shape,) = in_shapes
        _rank(shape, 4, "ZeroPadding2D")
        (top, bottom), (left, right) = config["padding"]
        return [(None, None if shape[1] is None else shape[1] + top + bottom,
                 None if shape[2] is None else shape[2] + left + right, shape[3])]

    def forward(self, x):
        (top, bottom), (left, right) = self.config["padding"]
        return F.pad(x, (left, right, top, bottom))


@_register("Cropping2D")
class Cropping2D(KerasLayer):
    @classmethod
    def check(cls, config):
        c = _fields(config, ("cropping",))
        return {"cropping": _four(c["cropping"], "cropping")}

    @classmethod
    def infer(cls, config, in_shapes):
        (shape,) = in_shapes
        _rank(shape, 4, "Cropping2D")
        (top, bottom), (left, right) = config["cropping"]
        h = None if shape[1] is None else shape[1] - top - bottom
        w = None if shape[2] is None else shape[2] - left - right
        if (h is not None and h <= 0) or (w is not None and w <= 0):
            raise GraphError(f"Cropping2D crops all of {_show(shape)}")
        return [(None, h, w, shape[3])]

    def forward(self, x):
        (top, bottom), (left, right) = self.config["cropping"]
        return x[:, :, top:x.shape[2] - bottom, left:x.shape[3] - right]


@_register("Reshape")
class Reshape(KerasLayer):
    @classmethod
    def check(cls, config):
        c = _fields(config, ("target_shape",))
        target = c["target_shape"]
        if not isinstance(target, list) or not target:
            raise GraphError(f"target_shape must be a list, got {target!r}")
        target = [d if d == -1 else _int(d, "target dimension") for d in target]
        if target.count(-1) > 1:
            raise GraphError("target_shape has more than one -1")
        return {"target_shape": target}

    @classmethod
    def infer(cls, config, in_shapes):
        (shape,) = in_shapes
        target = config["target_shape"]
        size = math.prod(shape[1:]) if _known(*shape[1:]) else None
        known = math.prod(d for d in target if d != -1)
        if -1 in target:
            if size is not None and size % known:
                raise GraphError(f"cannot reshape {_show(shape)} to {target}")
            fill = None if size is None else size // known
            return [(None,) + tuple(fill if d == -1 else d for d in target)]
        if size is not None and size != known:
            raise GraphError(f"cannot reshape {_show(shape)} to {target}")
        return [(None,) + tuple(target)]

    def forward(self, x):
        return to_internal(to_keras(x).reshape(x.shape[0], *self.config["target_shape"]))


@_register("Flatten")
class Flatten(KerasLayer):
    @classmethod
    def infer(cls, config, in_shapes):
        (shape,) = in_shapes
        return [(None, math.prod(shape[1:]) if _known(*shape[1:]) else None)]

    def forward(self, x):
        return to_keras(x).reshape(x.shape[0], -1)  # Keras's order: H, W, C


@_register("Dropout", "SpatialDropout2D")
class Identity(KerasLayer):
    def forward(self, x):
        return x


def check_config(class_name: str, config: dict) -> dict:
    """A normalized layer config, checked: GraphError names what is wrong."""
    if class_name not in LAYERS:
        raise GraphError(f"layer type {class_name} is not supported")
    if not isinstance(config, dict):
        raise GraphError("config must be an object")
    return LAYERS[class_name].check(config)


# ----------------------------------------------------------------------------- the graph

def _ref(value: Any, what: str) -> tuple[str, int, int]:
    if (not isinstance(value, list) or len(value) != 3 or not isinstance(value[0], str)
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value[1:])):
        raise GraphError(f"{what} must be [layer, node, tensor], got {value!r}")
    return value[0], value[1], value[2]


def _module_key(name: str, taken: set[str]) -> str:
    key = "".join(c if c.isalnum() or c in "_-" else "_" for c in name) or "layer"
    base, n = key, 1
    while key in taken:
        n += 1
        key = f"{base}_{n}"
    taken.add(key)
    return key


_MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


class KerasGraph(nn.Module):
    """A Keras functional model as torch runs it. forward(*inputs): NHWC (or (N, C), ...)
    tensors in the model's input order -> list of outputs in the model's output order.

    `memory_format`: how rank-4 inputs are laid out once permuted to NCHW: "contiguous"
    (NCHW memory), "channels_last" (NHWC memory, which torch's convolutions then keep; give
    the weights `model.to(memory_format=torch.channels_last)` too) or None (the permuted view
    as it is). See benchmarks/bench_keras.py."""

    memory_format: str | None = "channels_last"

    def __init__(self, graph: dict):
        super().__init__()
        if not isinstance(graph, dict) or graph.get("format") != GRAPH_FORMAT:
            raise GraphError("not an inkn'hue Keras graph")
        if graph.get("version") != GRAPH_VERSION:
            raise GraphError(f"graph version {graph.get('version')!r}; this inkn'hue reads version "
                             f"{GRAPH_VERSION}: convert the model again")
        entries = graph.get("layers")
        if not isinstance(entries, list) or not entries:
            raise GraphError("the graph has no layers")
        self.name = str(graph.get("name", "model"))
        self.warnings: list[str] = []  #: what load() found wrong with the weights (NaN...)
        self.layers = nn.ModuleDict()
        self.keys: dict[str, str] = {}  # Keras layer name -> module key
        layers: dict[str, dict] = {}
        taken: set[str] = set()
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise GraphError("a layer entry lacks its name")
            name = entry["name"]
            if name in layers:
                raise GraphError(f"two layers are named {name!r}")
            class_name = entry.get("class_name")
            try:
                config = check_config(class_name, entry.get("config"))
            except GraphError as exc:
                raise GraphError(f"layer {name!r} ({class_name}): {exc}") from None
            nodes = entry.get("nodes", [])
            if not isinstance(nodes, list) or any(not isinstance(n, list) for n in nodes):
                raise GraphError(f"layer {name!r}: nodes must be lists of references")
            if class_name == "InputLayer" and nodes:
                raise GraphError(f"input layer {name!r} has inbound nodes")
            layers[name] = {"class_name": class_name, "config": config,
                            "nodes": [[_ref(r, f"layer {name!r}'s input") for r in node] for node in nodes]}
        self.input_names = self._endpoints(graph.get("inputs"), layers, "inputs")
        self.output_names = self._endpoints(graph.get("outputs"), layers, "outputs")
        for name, node, tensor in self.input_names:
            if layers[name]["class_name"] != "InputLayer" or node or tensor:
                raise GraphError(f"model input {name!r} is not an InputLayer's output")
        inputs_used = {name for name, _, _ in self.input_names}
        for name, layer in layers.items():
            if layer["class_name"] == "InputLayer" and name not in inputs_used:
                raise GraphError(f"input layer {name!r} is not among the model's inputs")

        # every node (layer, index) in an order where its inputs come first
        shapes: dict[tuple[str, int, int], Shape] = {}
        for name, _, _ in self.input_names:
            shapes[(name, 0, 0)] = tuple(layers[name]["config"]["shape"])
        pending = [(name, i) for name, layer in layers.items() for i in range(len(layer["nodes"]))]
        order: list[tuple[str, int, int]] = []  # (layer, node, number of outputs)
        built: dict[str, list[Shape]] = {}
        while pending:
            waiting = []
            for name, index in pending:
                layer = layers[name]
                refs = layer["nodes"][index]
                if not all(ref in shapes for ref in refs):
                    waiting.append((name, index))
                    continue
                in_shapes = [shapes[ref] for ref in refs]
                cls = LAYERS[layer["class_name"]]
                least, most = cls.inputs
                if len(refs) < least or (most is not None and len(refs) > most):
                    raise GraphError(f"layer {name!r} ({layer['class_name']}) takes {least}"
                                     f"{'' if most == least else ' or more' if most is None else f' to {most}'}"
                                     f" inputs, its node {index} has {len(refs)}")
                try:
                    outs = cls.infer(layer["config"], in_shapes)
                    params = cls.param_shapes(layer["config"], in_shapes)
                except GraphError as exc:
                    raise GraphError(f"layer {name!r} ({layer['class_name']}): {exc}") from None
                if name in built:
                    if cls.param_shapes(layer["config"], built[name]) != params:
                        raise GraphError(f"shared layer {name!r} is called on incompatible inputs")
                else:
                    built[name] = in_shapes
                for t, shape in enumerate(outs):
                    shapes[(name, index, t)] = shape
                order.append((name, index, len(outs)))
            if len(waiting) == len(pending):
                name, index = waiting[0]
                missing = [r for r in layers[name]["nodes"][index] if r not in shapes]
                raise GraphError(f"layer {name!r} waits for {missing[0][0]!r} (node {missing[0][1]}, tensor "
                                 f"{missing[0][2]}), which nothing produces (or a cycle)")
            pending = waiting
        for ref in self.output_names:
            if ref not in shapes:
                raise GraphError(f"model output {ref[0]!r} (node {ref[1]}, tensor {ref[2]}) is never computed")
        parameters = sum(math.prod(shape) for name, in_shapes in built.items()
                         for shape in LAYERS[layers[name]["class_name"]].param_shapes(layers[name]["config"],
                                                                                       in_shapes).values())
        if parameters > MAX_PARAMETERS:
            raise GraphError(f"it declares {parameters:,} parameters, more than the {MAX_PARAMETERS:,} inkn'hue "
                             f"accepts (Style2Paints' largest network has about 100 million)")

        for name, layer in layers.items():
            if layer["class_name"] == "InputLayer" or name not in built:
                continue
            key = _module_key(name, taken)
            self.keys[name] = key
            self.layers[key] = LAYERS[layer["class_name"]](layer["config"], built[name])

        # slots for tensors, and when each can be let go
        slots: dict[tuple[str, int, int], int] = {}
        for ref in self.input_names:
            slots.setdefault(ref, len(slots))
        for name, index, count in order:
            for t in range(count):
                slots[(name, index, t)] = len(slots)
        last_use: dict[int, int] = {}
        for step, (name, index, _) in enumerate(order):
            for ref in layers[name]["nodes"][index]:
                last_use[slots[ref]] = step
        kept = {slots[ref] for ref in self.output_names}
        plan = []
        for step, (name, index, _) in enumerate(order):
            ins = [slots[ref] for ref in layers[name]["nodes"][index]]
            out = slots[(name, index, 0)]
            free = {s for s in ins if last_use.get(s) == step and s not in kept}
            if out not in last_use and out not in kept:  # computed, never used
                free.add(out)
            plan.append((self.keys[name], tuple(ins), out, tuple(sorted(free))))
        self._plan = plan
        self._n_slots = len(slots)
        self._input_slots = [slots[ref] for ref in self.input_names]
        self._output_slots = [slots[ref] for ref in self.output_names]
        self.input_shapes = [shapes[ref] for ref in self.input_names]
        self.output_shapes = [shapes[ref] for ref in self.output_names]

    @staticmethod
    def _endpoints(value: Any, layers: dict, what: str) -> list[tuple[str, int, int]]:
        if not isinstance(value, list) or not value:
            raise GraphError(f"the graph lists no {what}")
        refs = [_ref(v, f"a model {what[:-1]}") for v in value]
        for name, _, _ in refs:
            if name not in layers:
                raise GraphError(f"model {what[:-1]} {name!r} is not a layer of the graph")
        return refs

    def forward(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        if len(inputs) != len(self._input_slots):
            raise ValueError(f"{self.name} takes {len(self._input_slots)} inputs "
                             f"({', '.join(n for n, _, _ in self.input_names)}), got {len(inputs)}")
        values: list[torch.Tensor | None] = [None] * self._n_slots
        for slot, x, shape, (name, _, _) in zip(self._input_slots, inputs, self.input_shapes, self.input_names,
                                                strict=True):
            if x.dim() != len(shape) or (shape[-1] is not None and x.shape[-1] != shape[-1]):
                raise ValueError(f"input {name!r} must be shaped {_show(shape)}, got {tuple(x.shape)}")
            x = to_internal(x)
            if x.dim() == 4 and self.memory_format is not None:
                x = x.contiguous(memory_format=_MEMORY_FORMATS[self.memory_format])
            values[slot] = x
        for key, ins, out, free in self._plan:
            values[out] = self.layers[key](*[values[i] for i in ins])
            for slot in free:
                values[slot] = None
        return [to_keras(values[slot]).contiguous() for slot in self._output_slots]


# ----------------------------------------------------------------------------- files

def converted_paths(dst: str | os.PathLike) -> tuple[Path, Path]:
    """(graph JSON, weights safetensors) of a converted model: `dst` is their common stem
    (`out/head` -> `out/head.json` and `out/head.safetensors`); either file's name works too."""
    text = os.fspath(dst)
    for suffix in (".json", ".safetensors"):
        if text.endswith(suffix):
            text = text[:-len(suffix)]
    return Path(text + ".json"), Path(text + ".safetensors")


def read_graph(path: Path) -> dict:
    """The graph JSON of a converted model: a regular file of at most MAX_GRAPH_BYTES, nested
    at most `small_files.MAX_JSON_DEPTH` deep."""
    try:
        graph = parse_json(read_small_file(path, MAX_GRAPH_BYTES))
    except FileNotFoundError:
        raise WeightsError(f"{path} is missing: convert the Keras model first") from None
    except FileTooLarge:
        raise WeightsError(f"{path} is larger than {MAX_GRAPH_BYTES} bytes, too large for a converted Keras "
                           f"graph") from None
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise WeightsError(f"{path} is not valid JSON ({exc}); convert the Keras model again") from None
    if not isinstance(graph, dict) or graph.get("format") != GRAPH_FORMAT:
        raise WeightsError(f"{path} is not a converted Keras graph")
    return graph


def build(graph: dict, device: str | torch.device = "meta", where: str = "graph") -> KerasGraph:
    """The module for a graph, its tensors uninitialized (on the meta device by default)."""
    try:
        with torch.device(device):
            return KerasGraph(graph)
    except GraphError as exc:
        raise WeightsError(f"{where}: {exc}") from None


def load(dst: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> KerasGraph:
    """A converted Keras model (see `convert`), from its JSON graph and safetensors weights only."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    graph_path, weights_path = converted_paths(dst)
    graph = read_graph(graph_path)
    model = build(graph, "meta", str(graph_path))
    expected = model.state_dict()
    try:
        size = weights_path.stat().st_size
    except FileNotFoundError:
        raise WeightsError(f"{weights_path} is missing: convert the Keras model again") from None
    recorded = graph.get("weights", {}).get("bytes")
    if recorded is not None and recorded != size:
        raise WeightsError(f"{weights_path} is {size} bytes, {graph_path} expects {recorded}: "
                           f"convert the Keras model again")
    try:
        tensors = load_file(str(weights_path), device=str(torch.device(device)))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"{weights_path} is not readable safetensors ({str(exc).splitlines()[0]}); "
                           f"convert the Keras model again") from None
    missing = [k for k in expected if k not in tensors]
    if missing:
        raise WeightsError(f"{weights_path} lacks the tensor {missing[0]}"
                           + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                           + "; convert the Keras model again")
    unexpected = [k for k in tensors if k not in expected]
    if unexpected:
        raise WeightsError(f"{weights_path} holds the unexpected tensor {unexpected[0]}; "
                           f"convert the Keras model again")
    for key, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise WeightsError(f"{weights_path}: {key} is shaped {tuple(tensor.shape)}, the graph needs "
                               f"{tuple(expected[key].shape)}; convert the Keras model again")
        if not tensor.is_floating_point():
            raise WeightsError(f"{weights_path}: {key} is {tensor.dtype}, not floating point")
    bad = nonfinite_tensors(tensors)
    model.warnings = [nonfinite_warning(str(weights_path), bad, len(tensors),
                                        "convert the Keras model again from a sound file")] if bad else []
    for warning in model.warnings:
        log.warning("%s", warning)
    model.load_state_dict(tensors, strict=True, assign=True)
    del tensors  # the module holds them now; converting them below frees each original in turn
    if dtype is not None:
        model.to(dtype)
    if model.memory_format == "channels_last":
        model.to(memory_format=torch.channels_last)
    return model.eval().requires_grad_(False)


def up_to_date(src: str | os.PathLike, dst: str | os.PathLike) -> bool:
    """Whether `dst` is a conversion, by this inkn'hue's graph version, of the file `src` as it
    is now (its size and sha256 as recorded at conversion)."""
    import hashlib

    graph_path, weights_path = converted_paths(dst)
    try:
        graph = read_graph(graph_path)
        source = graph.get("source", {})
        src = Path(src)
        if graph.get("version") != GRAPH_VERSION or not weights_path.exists() \
                or source.get("bytes") != src.stat().st_size:
            return False
        digest = hashlib.sha256()
        with open(src, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return source.get("sha256") == digest.hexdigest()
    except (WeightsError, OSError):
        return False


def parameter_count(model: nn.Module) -> int:
    return sum(t.numel() for t in model.state_dict().values())

