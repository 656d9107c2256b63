"""Whole-model Keras HDF5 files (Style2Paints' `*.net`) -> inkn'hue's converted Keras graph.

The one place in inkn'hue that reads HDF5: h5py is imported here and nowhere else, so "no
code from model files" has a single enforcement point. What is read:

- the root attributes `model_config` (JSON text, parsed with `json` only), `keras_version`
  and `backend`;
- `model_weights/<layer>/` with its `weight_names` attribute and the datasets it names.

Nothing here calls Keras, and no h5py API that rebuilds Python objects: a Lambda layer's
config holds marshalled Python bytecode (base64 text) that is never decoded, let alone run;
the layer is refused by name, with the code's size and sha256 so that it can be recognised.

Layer configs of Keras 2.x are read in both eras: standalone Keras 2.0-2.3 and tf.keras of
TF 1.x ("2.2.4-tf": class "Model", `batch_input_shape`, inbound nodes as
`[[layer, node, tensor, kwargs], ...]`) and tf.keras / tf-keras 2.x (class "Functional",
`groups`, `keepdims`, BatchNormalization's axis as a list). Sequential models of both eras
(a list of layers, or {"name", "layers"} with or without an InputLayer) become the same chain.
Keras 1 and Keras 3 files, other backends (Theano's kernels are flipped) and channels_first
layers are refused. Each layer's config is normalized to the fields the runtime
(`inknhue.networks.keras`) uses, and checked there.

The weights are streamed: each tensor is read, put in torch's layout and written to the
safetensors file before the next one is read, so a 412 MB network never sits in memory
twice. The graph JSON is written last, over a temporary name, so a converted model is
complete or absent.

A file from the internet may hold only its own bytes, and only as many as it declares.
Before any data is read (`_check_self_contained`): external links, datasets with external
storage (raw bytes of any local file: /etc/passwd, a FIFO) and virtual datasets (mapped from
other HDF5 files) are refused, by name, wherever they are in the file. Before anything is
allocated: the model may declare at most `networks.keras.MAX_PARAMETERS`; each tensor read
must be plain floating point without filters, and stored in the file in full (a chunked
dataset declared 2.4 GB in a 137 KB file is refused, not read as zeros), and all of them
together fit in the file. Only regular files are opened; `model_config` is parsed nested at
most `runtime.small_files.MAX_JSON_DEPTH` deep.

UpSampling2D's bilinear rule depends on the TensorFlow that runs the model: "legacy"
(`tf.image.resize_bilinear` without half-pixel centres) in standalone Keras and tf.keras up to
TF 1.14, "half_pixel" from TF 1.15 and 2.0 on. It is taken from `keras_version` unless given:
"2.2.4-tf" was written by TF 1.13 to 2.1 alike and is read as TF 1.14 (legacy), with a note.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

from ...errors import WeightsError
from ...networks import keras as runtime
from ...runtime.small_files import NotARegularFile, TooDeep, check_regular, parse_json

FLOAT_TYPES = (np.float16, np.float32, np.float64)
#: the most groups and datasets a file may hold (Style2Paints' networks have a few hundred)
MAX_OBJECTS = 100_000
_TF_ERA_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(.*)$")


class Refused(Exception):
    """Why one layer cannot be converted (a complete predicate: "is ..." / "has ...")."""


@dataclass
class Refusal:
    layer: str
    class_name: str
    reason: str

    def __str__(self) -> str:
        if self.class_name in ("Model", "Functional", "Sequential") and self.reason.startswith("cannot be built"):
            return f"the model {self.layer!r} {self.reason}"
        return f"layer {self.layer!r} ({self.class_name}) {self.reason}"


@dataclass
class KerasFile:
    """What a Keras HDF5 file holds, as far as inkn'hue reads it (weights not read)."""

    path: Path
    bytes: int
    keras_version: str
    backend: str
    model_class: str
    name: str
    layer_types: dict[str, int]
    refusals: list[Refusal]
    notes: list[str] = field(default_factory=list)
    inputs: list[tuple[str, tuple]] = field(default_factory=list)
    outputs: list[tuple[str, tuple]] = field(default_factory=list)
    graph: dict | None = None  # the normalized graph, when nothing is refused

    @property
    def supported(self) -> bool:
        return not self.refusals and self.graph is not None

    def error(self) -> WeightsError:
        first = self.refusals[0]
        more = len(self.refusals) - 1
        return WeightsError(f"{self.path.name}: {first}" + (f"; {more} more refused" if more else "")
                            + " (`inknhue style2paints inspect` lists what the file needs)")


@dataclass
class Converted:
    graph_path: Path
    weights_path: Path
    parameters: int
    source: KerasFile


# ----------------------------------------------------------------------------- reading the file

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_hdf5(path: Path) -> bool:
    """Whether the file starts like HDF5 (the signature sits at 0, 512, 1024, 2048, ...)."""
    try:
        with open(path, "rb") as f:
            for offset in (0, 512, 1024, 2048, 4096):
                f.seek(offset)
                if f.read(8) == HDF5_SIGNATURE:
                    return True
    except OSError:
        return False
    return False


class NotHDF5(WeightsError):
    """The file is not HDF5 at all (another kind of file)."""


@contextmanager
def _open(path: Path) -> Iterator[h5py.File]:
    try:
        info = path.stat()
        check_regular(path, info)
    except FileNotFoundError:
        raise WeightsError(f"{path} is missing") from None
    except NotARegularFile as exc:
        raise WeightsError(f"{exc}: a Keras model is a file") from None
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc.strerror or exc}") from None
    if info.st_size == 0:
        raise WeightsError(f"{path} is empty")
    if not is_hdf5(path):
        raise NotHDF5(f"{path} is not an HDF5 file (a Keras model file starts with the HDF5 signature)")
    try:
        handle = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path} is a damaged HDF5 file (truncated or corrupt?): {_first_line(exc)}") from None
    try:
        _check_self_contained(handle, path)
        yield handle
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise WeightsError(f"{path} is damaged (truncated or corrupt?): {_first_line(exc)}") from None
    finally:
        handle.close()


def _object_name(parent: str, name: bytes) -> str:
    text = name.decode("utf-8", "replace")
    return f"{parent.rstrip('/')}/{text}"


def _storage_refusal(dataset_id: h5py.h5d.DatasetID) -> str | None:
    """Why a dataset's data is not the file's own bytes, or None."""
    plist = dataset_id.get_create_plist()
    if plist.get_layout() == h5py.h5d.VIRTUAL:
        return "is a virtual dataset (its data is mapped from other files)"
    if plist.get_external_count():
        name = plist.get_external(0)[0]
        shown = json.dumps(name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name))
        return f"keeps its data in the external file {shown}"
    return None


def _check_self_contained(handle: h5py.File, path: Path) -> None:
    """Walk every link of the file, following hard links only, and refuse by name whatever
    would make HDF5 read another file: an external link, external storage, a virtual
    dataset, a link of a user-defined kind. Reads no dataset's data."""
    why = "an HDF5 model file may hold only its own bytes"
    stack: list[tuple[str, h5py.h5g.GroupID]] = [("/", handle.id)]
    seen = {hash(handle.id)}
    while stack:
        where, group = stack.pop()
        for name in group:
            full = _object_name(where, name)
            kind = group.links.get_info(name).type
            if kind == h5py.h5l.TYPE_SOFT:
                continue  # another name for an object of this file, met through its hard link
            if kind == h5py.h5l.TYPE_EXTERNAL:
                target = group.links.get_val(name)
                file_name = target[0].decode("utf-8", "replace") if isinstance(target, tuple) else "?"
                raise WeightsError(f"{path}: {json.dumps(full)} is an external link to the file "
                                   f"{json.dumps(file_name)}; {why}, refusing it")
            if kind != h5py.h5l.TYPE_HARD:
                raise WeightsError(f"{path}: {json.dumps(full)} is a link of a user-defined kind; {why}, "
                                   f"refusing it")
            child = h5py.h5o.open(group, name)
            key = hash(child)
            if key in seen:
                continue
            seen.add(key)
            if len(seen) > MAX_OBJECTS:
                raise WeightsError(f"{path} holds more than {MAX_OBJECTS} groups and datasets, far more than a "
                                   f"Keras model has; refusing it")
            child_type = h5py.h5i.get_type(child)
            if child_type == h5py.h5i.GROUP:
                stack.append((full, child))
            elif child_type == h5py.h5i.DATASET:
                refusal = _storage_refusal(child)
                if refusal:
                    raise WeightsError(f"{path}: the dataset {json.dumps(full)} {refusal}; {why}, refusing it")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _text(value: Any) -> str:
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8")
    if isinstance(value, str):
        return value
    raise ValueError(f"expected text, found {type(value).__name__}")


def _text_list(group: h5py.Group, name: str) -> list[str]:
    """A list attribute, also in Keras's chunked form (`name0`, `name1`, ... past 64 KB)."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(group.attrs[f"{name}{chunk}"])
            chunk += 1
    return [_text(v) for v in values]


def bilinear_rule(keras_version: str) -> tuple[str, str | None]:
    """(rule, note) for UpSampling2D(interpolation="bilinear") by the version that wrote the file."""
    match = _TF_ERA_VERSION.match(keras_version)
    if not match:
        return "legacy", (f"keras_version {keras_version!r} is not a version number: bilinear upsampling "
                          f"follows TF 1.x (legacy)")
    version, tail = tuple(int(match.group(i)) for i in (1, 2, 3)), match.group(4)
    if tail.startswith("-tf"):
        if version <= (2, 2, 4):
            return "legacy", (f"keras_version {keras_version} was written by TF 1.13 to 2.1: bilinear "
                              f"upsampling follows TF 1.13/1.14 (legacy); TF 1.15 to 2.1 used half-pixel "
                              f"centres")
        return "half_pixel", None
    return ("legacy", None) if version < (2, 4, 0) else ("half_pixel", None)


# ----------------------------------------------------------------------------- configs

def _pair(value: Any, what: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return [value, value]
    if isinstance(value, list) and len(value) == 2:
        return list(value)
    if isinstance(value, list) and len(value) == 1:
        return [value[0], value[0]]
    raise Refused(f"has {what} {value!r}, which is not one or two integers")


def _four(value: Any, what: str) -> list[list[int]]:
    """ZeroPadding2D / Cropping2D: n, (h, w) or ((top, bottom), (left, right))."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [[value, value], [value, value]]
    if isinstance(value, list) and len(value) == 2:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return [[value[0], value[0]], [value[1], value[1]]]
        if all(isinstance(v, list) and len(v) == 2 for v in value):
            return [list(value[0]), list(value[1])]
    raise Refused(f"has {what} {value!r}, which is not ((top, bottom), (left, right))")


def _channels_last(config: dict) -> None:
    fmt = config.get("data_format")
    if fmt not in (None, "channels_last"):
        raise Refused(f"has data_format {fmt!r}; only channels_last is supported")


def _activation(config: dict) -> str:
    name = config.get("activation", "linear")
    if name is None:
        return "linear"
    if not isinstance(name, str) or name not in runtime.ACTIVATIONS:
        raise Refused(f"has the activation {name!r}, which is not supported "
                      f"(supported: {', '.join(runtime.ACTIVATIONS)})")
    return name


def _axis(value: Any) -> int:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refused(f"has axis {value!r}; only one axis is supported")
    return value


def _conv(c: dict, ctx: dict) -> dict:
    _channels_last(c)
    padding = str(c.get("padding", "valid")).lower()
    if padding not in ("same", "valid"):
        raise Refused(f"has padding {padding!r}; only same and valid are supported")
    return {"filters": c.get("filters"), "kernel_size": _pair(c.get("kernel_size"), "kernel_size"),
            "strides": _pair(c.get("strides", 1), "strides"), "padding": padding,
            "dilation_rate": _pair(c.get("dilation_rate", 1), "dilation_rate"), "groups": c.get("groups", 1),
            "use_bias": c.get("use_bias", True), "activation": _activation(c)}


def _deconv(c: dict, ctx: dict) -> dict:
    out = _conv(c, ctx)
    del out["groups"]
    if c.get("groups", 1) != 1:
        raise Refused("has groups, which transposed convolutions do not support")
    output_padding = c.get("output_padding")
    out["output_padding"] = None if output_padding is None else _pair(output_padding, "output_padding")
    return out


def _batch_norm(c: dict, ctx: dict) -> dict:
    for option, inert in (("renorm", False), ("virtual_batch_size", None), ("adjustment", None)):
        if c.get(option, inert) not in (inert,):
            raise Refused(f"has {option} set, which is not supported")
    return {"axis": _axis(c.get("axis", -1)), "epsilon": c.get("epsilon", 1e-3), "center": c.get("center", True),
            "scale": c.get("scale", True)}


def _pooling(c: dict, ctx: dict) -> dict:
    _channels_last(c)
    pool = _pair(c.get("pool_size", 2), "pool_size")
    strides = c.get("strides")
    padding = str(c.get("padding", "valid")).lower()
    return {"pool_size": pool, "strides": pool if strides is None else _pair(strides, "strides"),
            "padding": padding}


def _global_pooling(c: dict, ctx: dict) -> dict:
    _channels_last(c)
    return {"keepdims": c.get("keepdims", False)}


def _upsampling(c: dict, ctx: dict) -> dict:
    _channels_last(c)
    interpolation = c.get("interpolation", "nearest")
    if interpolation not in ("nearest", "bilinear"):
        raise Refused(f"has interpolation {interpolation!r}; only nearest and bilinear are supported")
    if interpolation == "bilinear":
        ctx["bilinear_used"] = True
    return {"size": _pair(c.get("size", 2), "size"), "interpolation": interpolation, "bilinear": ctx["bilinear"]}


def _input(c: dict, ctx: dict) -> dict:
    shape = c.get("batch_input_shape", c.get("batch_shape"))
    if not isinstance(shape, list):
        raise Refused("has no batch_input_shape")
    if c.get("sparse") or c.get("ragged"):
        raise Refused("is a sparse or ragged input")
    dtype = c.get("dtype", "float32")
    if dtype not in (None, "float16", "float32", "float64"):
        raise Refused(f"takes {dtype} tensors; only floating point inputs are supported")
    return {"shape": [None] + list(shape[1:])}


def _flatten(c: dict, ctx: dict) -> dict:
    _channels_last(c)
    return {}


def _nothing(c: dict, ctx: dict) -> dict:
    return {}


PARSERS = {
    "InputLayer": _input,
    "Conv2D": _conv,
    "Conv2DTranspose": _deconv,
    "BatchNormalization": _batch_norm,
    "Dense": lambda c, ctx: {"units": c.get("units"), "use_bias": c.get("use_bias", True),
                             "activation": _activation(c)},
    "Activation": lambda c, ctx: {"activation": _activation(c)},
    "LeakyReLU": lambda c, ctx: {"alpha": c.get("alpha", c.get("negative_slope", 0.3))},
    "ELU": lambda c, ctx: {"alpha": c.get("alpha", 1.0)},
    "ReLU": lambda c, ctx: {"max_value": c.get("max_value"), "negative_slope": c.get("negative_slope", 0.0),
                            "threshold": c.get("threshold", 0.0)},
    "Softmax": lambda c, ctx: {"axis": _axis(c.get("axis", -1))},
    "PReLU": lambda c, ctx: {"shared_axes": ([c["shared_axes"]] if isinstance(c.get("shared_axes"), int)
                                             else c.get("shared_axes"))},
    "Add": _nothing, "Subtract": _nothing, "Multiply": _nothing, "Average": _nothing,
    "Maximum": _nothing, "Minimum": _nothing,
    "Concatenate": lambda c, ctx: {"axis": _axis(c.get("axis", -1))},
    "AveragePooling2D": _pooling, "MaxPooling2D": _pooling,
    "GlobalAveragePooling2D": _global_pooling, "GlobalMaxPooling2D": _global_pooling,
    "UpSampling2D": _upsampling,
    "ZeroPadding2D": lambda c, ctx: (_channels_last(c), {"padding": _four(c.get("padding", 1), "padding")})[1],
    "Cropping2D": lambda c, ctx: (_channels_last(c), {"cropping": _four(c.get("cropping", 0), "cropping")})[1],
    "Reshape": lambda c, ctx: {"target_shape": c.get("target_shape")},
    "Flatten": _flatten,
    "Dropout": _nothing, "SpatialDropout2D": lambda c, ctx: (_channels_last(c), {})[1],
}
assert set(PARSERS) == set(runtime.LAYERS), "every runtime layer has its parser and back"

#: (torch tensor name, permutation from Keras's array to torch's) in the order Keras saves them
_KERNEL = (3, 2, 0, 1)  # Conv2D HWIO -> OIHW; Conv2DTranspose HWOI -> IOHW


def weight_plan(class_name: str, config: dict, keras_rank: int = 0) -> list[tuple[str, tuple | None]]:
    if class_name in ("Conv2D", "Conv2DTranspose"):
        return [("weight", _KERNEL)] + ([("bias", None)] if config["use_bias"] else [])
    if class_name == "Dense":
        return [("weight", (1, 0))] + ([("bias", None)] if config["use_bias"] else [])
    if class_name == "BatchNormalization":
        return ([("weight", None)] if config["scale"] else []) + ([("bias", None)] if config["center"] else []) \
            + [("running_mean", None), ("running_var", None)]
    if class_name == "PReLU":  # alpha of a rank-4 input is (H, W, C) in Keras, (C, H, W) inside
        return [("alpha", (2, 0, 1) if keras_rank == 3 else None)]
    return []


def _describe_refused(class_name: str, config: dict) -> str:
    if class_name == "Lambda":
        function = config.get("function")
        kind = config.get("function_type")
        if kind == "lambda" or isinstance(function, list):
            code = function[0] if isinstance(function, list) and function else function
            code = code if isinstance(code, str) else json.dumps(code)
            digest = hashlib.sha256(code.encode("utf-8")).hexdigest()[:16]
            what = f"a Python lambda as {len(code)} characters of marshalled bytecode, sha256 {digest}"
        else:
            module = config.get("module")
            what = f"the Python function {(module + '.') if isinstance(module, str) else ''}{function}"
        return f"is refused: it runs Python code stored in the file ({what}), which inkn'hue never runs"
    if class_name in ("Model", "Functional", "Sequential"):
        return "is a nested model, which is not supported yet"
    if class_name == "TensorFlowOpLayer":
        op = (config.get("node_def") or {}).get("op") if isinstance(config.get("node_def"), dict) else None
        return f"is a raw TensorFlow op ({op or 'unknown'}), which is not supported yet"
    if class_name in ("TFOpLambda", "SlicingOpLambda"):
        return f"is the TensorFlow function {config.get('function')!r}, which is not supported yet"
    return "is a layer type that is not supported"


def _nodes(entry: dict, name: str) -> list[list[list]]:
    """Keras 2 inbound nodes -> [[[layer, node, tensor], ...], ...] (call kwargs checked)."""
    nodes = entry.get("inbound_nodes", [])
    if not isinstance(nodes, list):
        raise Refused("has inbound nodes in a format this converter does not read (Keras 3?)")
    out = []
    for node in nodes:
        if not isinstance(node, list):
            raise Refused("has inbound nodes in a format this converter does not read (Keras 3?)")
        refs = []
        for item in node:
            if not isinstance(item, list) or len(item) not in (3, 4) or not isinstance(item[0], str):
                raise Refused(f"has an inbound node entry {item!r} this converter does not read")
            kwargs = item[3] if len(item) == 4 else {}
            if not isinstance(kwargs, dict):
                raise Refused(f"has call arguments {kwargs!r} this converter does not read")
            other = {k: v for k, v in kwargs.items() if k not in ("training", "mask") or (k == "mask" and v)}
            if other:
                raise Refused(f"is called with arguments {sorted(other)}, which are not supported")
            refs.append([item[0], item[1], item[2]])
        out.append(refs)
    return out


def _endpoint_list(value: Any) -> list:
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        return [value]  # tf.keras writes a single input or output unwrapped
    if isinstance(value, dict):
        raise ValueError("named (dict) model inputs or outputs are not supported")
    return value if isinstance(value, list) else []


def _functional_layers(model_class: str, config: Any) -> tuple[str, list[dict], list, list]:
    """(name, layer entries with "name"/"class_name"/"config"/"inbound_nodes", inputs, outputs)."""
    if model_class == "Sequential":
        entries = config if isinstance(config, list) else config.get("layers", [])
        name = "sequential" if isinstance(config, list) else str(config.get("name", "sequential"))
        layers, previous = [], None
        for i, entry in enumerate(entries):
            layer_config = entry.get("config", {})
            layer_name = str(layer_config.get("name", f"layer_{i}"))
            if i == 0 and entry.get("class_name") != "InputLayer":
                shape = layer_config.get("batch_input_shape")
                if shape is None:
                    raise ValueError("the Sequential model's first layer has no batch_input_shape")
                previous = f"{layer_name}_input"
                layers.append({"name": previous, "class_name": "InputLayer",
                               "config": {"batch_input_shape": shape, "dtype": layer_config.get("dtype")},
                               "inbound_nodes": []})
            nodes = [] if entry.get("class_name") == "InputLayer" else [[[previous, 0, 0, {}]]]
            layers.append({"name": layer_name, "class_name": entry.get("class_name"), "config": layer_config,
                           "inbound_nodes": nodes})
            previous = layer_name
        if not layers:
            raise ValueError("the Sequential model has no layers")
        return name, layers, [[layers[0]["name"], 0, 0]], [[previous, 0, 0]]
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ValueError(f"model_config of class {model_class} has no layer list")
    return (str(config.get("name", "model")), config["layers"], _endpoint_list(config.get("input_layers")),
            _endpoint_list(config.get("output_layers")))


def _describe(handle: h5py.File, path: Path, bilinear: str | None) -> KerasFile:
    attrs = handle.attrs
    if "model_config" not in attrs:
        if "layer_names" in attrs or "model_weights" not in handle:
            raise WeightsError(f"{path} holds weights only (Keras save_weights), not a whole model: "
                               f"the architecture is missing")
        raise WeightsError(f"{path} has no model_config: not a whole Keras model")
    try:
        text = _text(attrs["model_config"])
        if len(text) > runtime.MAX_GRAPH_BYTES:
            raise WeightsError(f"{path}: model_config is {len(text)} characters, more than the "
                               f"{runtime.MAX_GRAPH_BYTES} a Keras model needs")
        model_config = parse_json(text)
    except TooDeep as exc:
        raise WeightsError(f"{path}: model_config is {exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{path}: model_config is not valid JSON ({exc})") from None
    keras_version = _text(attrs["keras_version"]) if "keras_version" in attrs else "unknown"
    backend = _text(attrs["backend"]) if "backend" in attrs else "tensorflow"
    if keras_version.startswith(("0.", "1.")):
        raise WeightsError(f"{path} was written by Keras {keras_version}; only Keras 2 files are supported")
    if keras_version.startswith("3."):
        raise WeightsError(f"{path} was written by Keras {keras_version}; only Keras 2 files "
                           f"(TF 1.x and tf.keras 2.x) are supported")
    if backend != "tensorflow":
        raise WeightsError(f"{path} was written with the {backend} backend; only TensorFlow's is supported")
    if not isinstance(model_config, dict) or "model_weights" not in handle:
        raise WeightsError(f"{path} is not a whole Keras model (no model_weights)")
    model_class = str(model_config.get("class_name"))
    if model_class not in ("Model", "Functional", "Sequential"):
        raise WeightsError(f"{path} holds a {model_class}, not a Keras functional or Sequential model")
    try:
        name, entries, input_refs, output_refs = _functional_layers(model_class, model_config.get("config"))
    except (ValueError, AttributeError, TypeError) as exc:
        raise WeightsError(f"{path}: {exc}") from None

    rule, note = bilinear_rule(keras_version)
    ctx = {"bilinear": bilinear or rule, "bilinear_used": False}
    counts: dict[str, int] = {}
    refusals: list[Refusal] = []
    layers = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise WeightsError(f"{path}: model_config has a layer that is not an object")
        class_name = str(entry.get("class_name"))
        config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
        layer_name = str(entry.get("name", config.get("name", "?")))
        counts[class_name] = counts.get(class_name, 0) + 1
        try:
            if class_name not in PARSERS:
                raise Refused(_describe_refused(class_name, config))
            normalized = runtime.check_config(class_name, PARSERS[class_name](config, ctx))
            nodes = _nodes(entry, layer_name)
        except Refused as exc:
            refusals.append(Refusal(layer_name, class_name, str(exc)))
            continue
        except runtime.GraphError as exc:
            refusals.append(Refusal(layer_name, class_name, f"has a config inkn'hue cannot use: {exc}"))
            continue
        layers.append({"name": layer_name, "class_name": class_name, "config": normalized, "nodes": nodes})
    notes = []
    if ctx["bilinear_used"]:
        rule_text = {"legacy": "legacy rule (TF <= 1.14: source = destination * in / out)",
                     "half_pixel": "half-pixel rule (TF >= 1.15)"}[ctx["bilinear"]]
        notes.append(f"bilinear UpSampling2D follows the {rule_text}"
                     + (" as asked" if bilinear else f", by keras_version {keras_version}"))
        if note and not bilinear:
            notes.append(note)
    described = KerasFile(path, path.stat().st_size, keras_version, backend, model_class, name,
                          dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))), refusals, notes)
    raw_inputs = {e.get("name"): e.get("config", {}).get("batch_input_shape") for e in entries
                  if isinstance(e, dict) and e.get("class_name") == "InputLayer"}
    described.inputs = [(ref[0], tuple(raw_inputs.get(ref[0]) or ())) for ref in input_refs
                        if isinstance(ref, list) and ref]
    described.outputs = [(ref[0], ()) for ref in output_refs if isinstance(ref, list) and ref]
    if refusals:
        return described
    graph = {"format": runtime.GRAPH_FORMAT, "version": runtime.GRAPH_VERSION, "name": name,
             "keras_version": keras_version, "backend": backend, "model_class": model_class,
             "inputs": [list(r[:3]) for r in input_refs], "outputs": [list(r[:3]) for r in output_refs],
             "layers": layers}
    try:
        with _meta():
            model = runtime.KerasGraph(graph)
    except runtime.GraphError as exc:
        described.refusals.append(Refusal(name, model_class, f"cannot be built: {exc}"))
        return described
    described.inputs = [(n, s) for (n, _, _), s in zip(model.input_names, model.input_shapes, strict=True)]
    described.outputs = [(n, s) for (n, _, _), s in zip(model.output_names, model.output_shapes, strict=True)]
    described.graph = graph
    return described


@contextmanager
def _meta():
    import torch

    with torch.device("meta"):
        yield


def read(path: str | os.PathLike, bilinear: str | None = None) -> KerasFile:
    """Describe a Keras HDF5 file: version, inputs, outputs, layer types, what is refused."""
    path = Path(path)
    with _open(path) as handle:
        return _describe(handle, path, bilinear)


# ----------------------------------------------------------------------------- writing

def _weights(handle: h5py.File, layer: str) -> list[h5py.Dataset]:
    group = handle["model_weights"]
    if layer not in group:
        return []
    layer_group = group[layer]
    return [layer_group[name] for name in _text_list(layer_group, "weight_names")]


def _check_stored(src: Path, layer: str, dataset: h5py.Dataset) -> None:
    """A tensor to read is plain floating point, without filters, and all of it is in the
    file (HDF5 reads chunks never written as zeros: a small file could declare gigabytes)."""
    plist = dataset.id.get_create_plist()
    if dataset.dtype.type not in FLOAT_TYPES or plist.get_nfilters():
        raise WeightsError(f"{src.name}: layer {layer!r}: {dataset.name} is {dataset.dtype}"
                           f"{' with filters (compressed?)' if plist.get_nfilters() else ''}, not plain "
                           f"floating point")
    refusal = _storage_refusal(dataset.id)  # the file was walked already; a second look costs nothing
    if refusal:
        raise WeightsError(f"{src.name}: layer {layer!r}: {dataset.name} {refusal}; refusing it")
    declared = dataset.dtype.itemsize * math.prod(dataset.shape)
    stored = dataset.id.get_storage_size()
    if stored < declared:
        raise WeightsError(f"{src.name}: layer {layer!r}: {dataset.name} declares {declared:,} bytes but the file "
                           f"holds {stored:,} of them; refusing it")


def _safetensors_header(entries: list[tuple[str, tuple[int, ...]]], metadata: dict[str, str]) -> bytes:
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for key, shape in entries:
        size = math.prod(shape) * 4
        header[key] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return text + b" " * (-len(text) % 8)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def convert(src: str | os.PathLike, dst: str | os.PathLike, bilinear: str | None = None) -> Converted:
    """Convert a whole-model Keras HDF5 file to `dst.json` (graph) + `dst.safetensors` (weights).

    `bilinear` ("legacy" or "half_pixel") overrides the bilinear UpSampling2D rule read from the
    file's keras_version. Raises WeightsError, naming the layer, for anything not supported.
    """
    if bilinear is not None and bilinear not in runtime.BILINEAR_RULES:
        raise ValueError(f"bilinear must be one of {runtime.BILINEAR_RULES}, got {bilinear!r}")
    src = Path(src)
    graph_path, weights_path = runtime.converted_paths(dst)
    with _open(src) as handle:
        described = _describe(handle, src, bilinear)
        if not described.supported:
            raise described.error()
        graph = described.graph
        model = runtime.build(graph, "meta", str(src))
        expected = model.state_dict()

        # what to write, checked against the file before anything is written
        plan = []  # (key, torch shape, dataset, permutation)
        for layer in graph["layers"]:
            name, class_name = layer["name"], layer["class_name"]
            datasets = _weights(handle, name)
            if class_name == "PReLU":
                specs = weight_plan(class_name, layer["config"], len(datasets[0].shape) if datasets else 0)
            else:
                specs = weight_plan(class_name, layer["config"])
            if len(datasets) != len(specs):
                raise WeightsError(f"{src.name}: layer {name!r} ({class_name}) has {len(datasets)} weight "
                                   f"tensors in the file, its config needs {len(specs)}")
            key = model.keys.get(name)
            for (tensor_name, permutation), dataset in zip(specs, datasets, strict=True):
                full = f"layers.{key}.{tensor_name}"
                shape = tuple(dataset.shape)
                torch_shape = (tuple(shape[i] for i in permutation) if permutation and len(shape) == len(permutation)
                               else shape)
                if full not in expected or torch_shape != tuple(expected[full].shape):
                    want = tuple(expected[full].shape) if full in expected else "nothing"
                    raise WeightsError(f"{src.name}: layer {name!r} ({class_name}): the file's "
                                       f"{dataset.name.rsplit('/', 1)[-1]} is shaped {shape}, the config needs "
                                       f"{want} (in torch's layout)")
                _check_stored(src, name, dataset)
                plan.append((full, torch_shape, dataset, permutation))
        missing = sorted(set(expected) - {p[0] for p in plan})
        if missing:
            raise WeightsError(f"{src.name}: no weights in the file for {missing[0]}")
        declared = sum(p[2].dtype.itemsize * math.prod(p[1]) for p in plan)
        if declared > described.bytes:
            raise WeightsError(f"{src.name}: its weights declare {declared:,} bytes, more than the file's own "
                               f"{described.bytes:,} (a tensor named twice?); refusing it")

        graph_path.parent.mkdir(parents=True, exist_ok=True)
        header = _safetensors_header([(k, s) for k, s, _, _ in plan],
                                     {"format": runtime.GRAPH_FORMAT, "source": src.name})
        temporary = weights_path.with_name(f".{weights_path.name}.{os.getpid()}.tmp")
        digest = hashlib.sha256()
        try:
            with open(temporary, "wb") as out:
                for block in (struct.pack("<Q", len(header)), header):
                    out.write(block)
                    digest.update(block)
                for _, _, dataset, permutation in plan:
                    array = np.asarray(dataset[()], dtype=np.float32)
                    if permutation:
                        array = array.transpose(permutation)
                    data = memoryview(np.ascontiguousarray(array, dtype="<f4")).cast("B")
                    out.write(data)
                    digest.update(data)
                    del array, data
            os.replace(temporary, weights_path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    parameters = sum(math.prod(s) for _, s, _, _ in plan)
    graph = dict(graph)
    graph["source"] = {"file": src.name, "bytes": described.bytes, "sha256": _sha256(src)}
    graph["weights"] = {"file": weights_path.name, "bytes": weights_path.stat().st_size,
                        "sha256": digest.hexdigest(), "parameters": parameters}
    temporary = graph_path.with_name(f".{graph_path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(graph, indent=1) + "\n", encoding="utf-8")
        os.replace(temporary, graph_path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return Converted(graph_path, weights_path, parameters, described)
