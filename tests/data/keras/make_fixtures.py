"""Write the Keras fixtures of tests/test_keras.py: small whole-model HDF5 files and TensorFlow's
own outputs for them. The project and its tests never need TensorFlow; this script does, once:

    python3 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install tensorflow-cpu tf-keras h5py
    TF_USE_LEGACY_KERAS=1 /tmp/tfvenv/bin/python tests/data/keras/make_fixtures.py

(written with tensorflow-cpu 2.21.0, tf-keras 2.21.0, h5py 3.14.0, Python 3.11.)

For each model NAME it writes NAME.h5 (Keras's HDF5 format, `model.save("NAME.h5")`) and
NAME.npz: the inputs `in0`, `in1`, ... (the model's input order) and TensorFlow's outputs
`out0`, `out1`, ... (its output order), float32. Weights are random (seeded), batch-norm
statistics included, so that every layer does something.

Two files are rewritten after saving, with h5py, to stand for the TF 1.x era (Keras 2.2.4,
what Style2Paints' `.net` files are): their `model_config` is put in Keras 2.2.4's form (class
"Model", no tf.keras 2.x keys, BatchNormalization called with training=False as Style2Paints'
code does, Sequential as a bare list of layers) and `keras_version` set to "2.2.4". For the
bilinear upsampling one, TF 2's UpSampling2D (half-pixel centres) is not what Keras 2.2.4 ran,
so its expected outputs are computed with `tf.compat.v1.image.resize_bilinear(align_corners=False,
half_pixel_centers=False)`, TF 1's rule, applied to the same tensors.

`lambda.h5` holds a Lambda whose code writes the file named by $INKNHUE_LAMBDA_MARKER: the
script checks that Keras itself (unsafe deserialization) would run it, then removes the file.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

L = keras.layers
HERE = Path(__file__).resolve().parent
RNG = np.random.default_rng(20240613)


def randomize(model: keras.Model) -> None:
    """Seeded random weights; positive variances for batch normalization."""
    values = []
    for weight in model.weights:
        shape = tuple(weight.shape)
        if "moving_variance" in weight.name:
            values.append(RNG.uniform(0.5, 1.5, shape))
        elif "moving_mean" in weight.name or "beta" in weight.name or "bias" in weight.name:
            values.append(RNG.normal(0.0, 0.3, shape))
        elif "gamma" in weight.name or "alpha" in weight.name:
            values.append(RNG.uniform(0.5, 1.5, shape))
        else:
            values.append(RNG.normal(0.0, 0.4, shape))
    model.set_weights([v.astype(np.float32) for v in values])


def inputs_for(model: keras.Model, spatial: tuple[int, int]) -> list[np.ndarray]:
    arrays = []
    for tensor in model.inputs:
        shape = [1] + [d for d in tensor.shape[1:]]
        if len(shape) == 4:
            shape = [1, shape[1] or spatial[0], shape[2] or spatial[1], shape[3]]
        arrays.append(RNG.normal(0.0, 1.0, shape).astype(np.float32))
    return arrays


def save(name: str, model: keras.Model, inputs: list[np.ndarray], outputs: list[np.ndarray] | None = None) -> None:
    path = HERE / f"{name}.h5"
    model.save(path, include_optimizer=False)
    if outputs is None:
        outputs = model(inputs if len(inputs) > 1 else inputs[0], training=False)
        outputs = [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
    arrays = {f"in{i}": a for i, a in enumerate(inputs)} | {f"out{i}": np.asarray(o, np.float32)
                                                           for i, o in enumerate(outputs)}
    np.savez_compressed(HERE / f"{name}.npz", **arrays)
    print(f"{name}: {len(inputs)} inputs, {len(outputs)} outputs {[tuple(o.shape) for o in outputs]}, "
          f"{path.stat().st_size} bytes")


# ----------------------------------------------------------------------------- models

def conv():
    x = L.Input((None, None, 3), name="image")
    same3 = L.Conv2D(4, 3, padding="same", activation="relu", name="same3")(x)
    s2k4 = L.Conv2D(4, 4, strides=2, padding="same", name="s2k4")(x)  # asymmetric on odd sizes
    s2k3_valid = L.Conv2D(3, 3, strides=2, padding="valid", activation="tanh", name="s2k3_valid")(x)
    dilated = L.Conv2D(4, 3, dilation_rate=2, padding="same", use_bias=False, name="dilated")(x)
    grouped = L.Conv2D(6, 3, groups=2, padding="same", name="grouped")(same3)
    rect = L.Conv2D(2, (2, 5), strides=(3, 2), padding="same", activation="sigmoid", name="rect")(x)
    dilated_valid = L.Conv2D(2, (3, 2), dilation_rate=(2, 3), padding="valid", name="dilated_valid")(x)
    pointwise = L.Conv2D(5, 1, name="pointwise")(s2k4)
    model = keras.Model(x, [same3, s2k4, s2k3_valid, dilated, grouped, rect, dilated_valid, pointwise], name="conv")
    randomize(model)
    save("conv", model, inputs_for(model, (17, 23)))


def deconv():
    x = L.Input((None, None, 4), name="features")
    outs = [
        L.Conv2DTranspose(3, 4, strides=2, padding="same", name="k4s2_same")(x),
        L.Conv2DTranspose(3, 3, strides=2, padding="same", activation="relu", name="k3s2_same")(x),
        L.Conv2DTranspose(2, 3, strides=2, padding="valid", name="k3s2_valid")(x),
        L.Conv2DTranspose(2, 2, strides=3, padding="valid", name="k2s3_valid")(x),
        L.Conv2DTranspose(2, 3, strides=2, padding="same", output_padding=1, name="k3s2_outpad1")(x),
        L.Conv2DTranspose(2, 3, strides=2, padding="same", output_padding=0, name="k3s2_outpad0")(x),
        L.Conv2DTranspose(2, 5, strides=2, padding="same", output_padding=1, name="k5s2_outpad1")(x),
        L.Conv2DTranspose(2, 3, strides=1, padding="same", dilation_rate=2, name="dilated")(x),
        L.Conv2DTranspose(2, (3, 4), strides=(2, 3), padding="same", use_bias=False, name="rect")(x),
        L.Conv2DTranspose(2, (3, 2), strides=(2, 3), padding="same", name="crop_h_extend_w")(x),
        L.Conv2DTranspose(2, 5, strides=2, padding="valid", output_padding=1, name="k5s2_valid_outpad1")(x),
    ]
    model = keras.Model(x, outs, name="deconv")
    randomize(model)
    save("deconv", model, inputs_for(model, (7, 9)))


def norm():
    x = L.Input((9, 11, 5), name="image")
    default = L.BatchNormalization(name="bn_default")(x)
    eps = L.BatchNormalization(epsilon=0.1, center=False, name="bn_eps_nocenter")(x)
    noscale = L.BatchNormalization(scale=False, name="bn_noscale")(x)
    rows = L.BatchNormalization(axis=1, name="bn_rows")(x)  # over H, Keras's axis 1
    vector = L.Dense(6, name="dense")(L.GlobalAveragePooling2D(name="gap")(x))
    vector = L.BatchNormalization(name="bn_vector")(vector)
    model = keras.Model(x, [default, eps, noscale, rows, vector], name="norm")
    randomize(model)
    save("norm", model, inputs_for(model, (9, 11)))


def dense():
    x = L.Input((5, 7, 3), name="image")
    flat = L.Flatten(name="flatten")(x)  # H, W, C order before the Dense
    hidden = L.Dense(8, activation="relu", name="hidden")(flat)
    probs = L.Dense(4, activation="softmax", name="probs")(hidden)
    per_pixel = L.Dense(6, activation="selu", name="per_pixel")(x)  # Dense on an NHWC map
    reshaped = L.Conv2D(2, 1, name="after_reshape")(L.Reshape((7, 5, 3), name="reshape")(x))
    rows = L.Reshape((-1, 3), name="rows")(x)
    per_row = L.Flatten(name="flatten_rows")(L.Dense(2, use_bias=False, name="per_row")(rows))
    gap = L.GlobalAveragePooling2D(keepdims=True, name="gap_keep")(x)
    gmp = L.GlobalMaxPooling2D(name="gmp")(x)
    prelu = L.PReLU(name="prelu_unshared")(x)
    prelu_c = L.PReLU(shared_axes=[3], name="prelu_shared_c")(x)
    model = keras.Model(x, [probs, per_pixel, reshaped, per_row, gap, gmp, prelu, prelu_c], name="dense")
    randomize(model)
    save("dense", model, inputs_for(model, (5, 7)))


def activations():
    x = L.Input((None, None, 4), name="image")
    y = L.Conv2D(4, 1, name="scale")(x)  # spreads values over a useful range
    outs = [L.Activation(name, name=f"act_{name}")(y)
            for name in ("relu", "elu", "selu", "tanh", "sigmoid", "softmax", "linear", "softplus", "softsign")]
    outs += [
        L.LeakyReLU(alpha=0.2, name="leaky")(y),
        L.PReLU(shared_axes=[1, 2], name="prelu")(y),
        L.ReLU(max_value=1.0, negative_slope=0.1, threshold=0.5, name="relu_layer")(y),
        L.ReLU(name="relu_plain")(y),
        L.ELU(alpha=0.7, name="elu_layer")(y),
        L.Softmax(name="softmax_layer")(y),
        L.Softmax(axis=1, name="softmax_rows")(y),
    ]
    model = keras.Model(x, outs, name="activations")
    randomize(model)
    save("activations", model, inputs_for(model, (6, 7)))


def merge():
    """Four inputs and eleven outputs, both in an order unlike the layers'; a shared layer."""
    a = L.Input((None, None, 4), name="a")
    b = L.Input((None, None, 4), name="b")
    v = L.Input((4,), name="v")
    c = L.Input((None, None, 2), name="c")
    shared = L.Conv2D(4, 3, padding="same", name="shared")
    sa, sb = shared(a), shared(b)  # one layer, two nodes
    outs = {
        "add3": L.Add(name="add3")([a, b, sa]),
        "sub": L.Subtract(name="sub")([a, sb]),
        "mul": L.Multiply(name="mul")([a, b]),
        "avg": L.Average(name="avg")([a, b, sb]),
        "max": L.Maximum(name="max")([a, b]),
        "min": L.Minimum(name="min")([sa, b]),
        "cat_c": L.Concatenate(name="cat_c")([a, c, b]),
        "cat_h": L.Concatenate(axis=1, name="cat_h")([a, b]),
        "cat_w": L.Concatenate(axis=2, name="cat_w")([sa, sb]),
        "add_vector": L.Add(name="add_vector")([a, v]),  # (N, 4) broadcast over H, W
        "mul_reshaped": L.Multiply(name="mul_reshaped")([b, L.Reshape((1, 1, 4), name="v_map")(v)]),
    }
    order = ["cat_c", "add_vector", "sub", "add3", "mul", "avg", "max", "min", "cat_h", "cat_w", "mul_reshaped"]
    model = keras.Model([c, a, v, b], [outs[k] for k in order], name="merge")
    randomize(model)
    save("merge", model, inputs_for(model, (5, 6)))


def pool():
    x = L.Input((None, None, 3), name="image")
    outs = [
        L.MaxPooling2D(2, name="max2")(x),
        L.MaxPooling2D(3, strides=2, padding="same", name="max3s2_same")(x),
        L.MaxPooling2D(3, strides=1, padding="same", name="max3s1_same")(x),
        L.AveragePooling2D(3, strides=2, padding="same", name="avg3s2_same")(x),
        L.AveragePooling2D((2, 3), strides=(1, 2), padding="same", name="avg23_same")(x),
        L.AveragePooling2D(3, strides=1, padding="same", name="avg3s1_same")(x),
        L.AveragePooling2D(2, name="avg2")(x),
        L.ZeroPadding2D(((1, 2), (3, 0)), name="zeropad")(x),
        L.Cropping2D(((2, 1), (0, 3)), name="crop")(x),
        L.UpSampling2D((2, 3), name="nearest")(x),
        L.UpSampling2D(2, interpolation="bilinear", name="bilinear2")(x),
        L.UpSampling2D((3, 2), interpolation="bilinear", name="bilinear32")(x),
        L.Dropout(0.5, name="dropout")(x),
        L.SpatialDropout2D(0.3, name="spatial_dropout")(x),
    ]
    model = keras.Model(x, outs, name="pool")
    save("pool", model, inputs_for(model, (17, 23)))


def sequential():
    model = keras.Sequential([
        L.InputLayer((None, None, 3), name="image"),
        L.Conv2D(4, 3, strides=2, padding="same", name="conv"),
        L.BatchNormalization(name="bn"),
        L.LeakyReLU(0.1, name="leaky"),
        L.MaxPooling2D(2, padding="same", name="pool"),
        L.GlobalAveragePooling2D(name="gap"),
        L.Dense(3, name="dense"),
    ], name="sequential")
    randomize(model)
    save("sequential", model, inputs_for(model, (13, 11)))


# ----------------------------------------------------------------------------- TF 1.x era

def _strip_tf2(value):
    """Keras 2.2.4's config form: no "module"/"registered_name" in nested objects."""
    if isinstance(value, dict):
        return {k: _strip_tf2(v) for k, v in value.items() if k not in ("module", "registered_name")}
    if isinstance(value, list):
        return [_strip_tf2(v) for v in value]
    return value


def as_keras_224(path: Path) -> None:
    """Rewrite a saved file's model_config and version as standalone Keras 2.2.4 wrote them."""
    with h5py.File(path, "r+") as f:
        config = _strip_tf2(json.loads(f.attrs["model_config"]))
        layers = config["config"]["layers"]
        for layer in layers:
            c = layer["config"]
            for key in ("ragged", "optional", "dtype") if layer["class_name"] != "InputLayer" else ("ragged",
                                                                                                      "optional"):
                c.pop(key, None)
            if c.get("groups") == 1:
                del c["groups"]
            if c.get("keepdims") is False:
                del c["keepdims"]
            if layer["class_name"] == "BatchNormalization":
                c["axis"] = c["axis"][0] if isinstance(c["axis"], list) else c["axis"]
                for node in layer.get("inbound_nodes", []):
                    for entry in node:
                        entry[3] = {"training": False}  # bnc0(c0(x), training=False), as Style2Paints does
        if config["class_name"] == "Functional":
            config["class_name"] = "Model"
        else:  # Sequential before Keras 2.2.3: a bare list of layers, no InputLayer
            first = layers[1]["config"]
            first["batch_input_shape"] = layers[0]["config"]["batch_input_shape"]
            config["config"] = [{"class_name": layer["class_name"], "config": layer["config"]}
                                for layer in layers[1:]]
        f.attrs["model_config"] = json.dumps(config).encode("utf-8")
        f.attrs["keras_version"] = b"2.2.4"
        f.attrs["backend"] = b"tensorflow"
        f["model_weights"].attrs["keras_version"] = b"2.2.4"


def tf1_bilinear():
    """Keras 2.2.4 (TF 1.x): UpSampling2D bilinear is resize_bilinear without half-pixel centres."""
    x = L.Input((None, None, 3), name="image")
    y = L.Conv2D(3, 3, padding="same", name="conv")(x)
    y = L.BatchNormalization(name="bn")(y)
    up = L.UpSampling2D((2, 3), interpolation="bilinear", name="up23")(y)
    up4 = L.UpSampling2D(4, interpolation="bilinear", name="up4")(y)
    near = L.UpSampling2D(3, name="nearest3")(y)
    model = keras.Model(x, [up, up4, near], name="model_1")
    randomize(model)
    inputs = inputs_for(model, (7, 5))
    features = keras.Model(x, y)(inputs[0], training=False)
    h, w = features.shape[1], features.shape[2]
    tf1 = tf.compat.v1.image.resize_bilinear
    outputs = [np.asarray(tf1(features, (h * 2, w * 3), align_corners=False, half_pixel_centers=False)),
               np.asarray(tf1(features, (h * 4, w * 4), align_corners=False, half_pixel_centers=False)),
               np.asarray(model(inputs[0], training=False)[2])]
    save("tf1_bilinear", model, inputs, outputs)
    as_keras_224(HERE / "tf1_bilinear.h5")


def tf1_sequential():
    model = keras.Sequential([
        L.Conv2D(3, 4, strides=2, padding="same", input_shape=(None, None, 2), name="conv2d_1"),
        L.BatchNormalization(name="batch_normalization_1"),
        L.Activation("relu", name="activation_1"),
        L.Conv2DTranspose(2, 4, strides=2, padding="same", name="conv2d_transpose_1"),
    ], name="sequential_1")
    randomize(model)
    save("tf1_sequential", model, inputs_for(model, (9, 10)))
    as_keras_224(HERE / "tf1_sequential.h5")


# ----------------------------------------------------------------------------- refused

def lambda_writes_a_file():
    marker = Path(tempfile.mkdtemp()) / "lambda-ran"
    os.environ["INKNHUE_LAMBDA_MARKER"] = str(marker)
    x = L.Input((None, None, 3), name="image")
    y = L.Conv2D(3, 3, padding="same", name="conv")(x)
    y = L.Lambda(lambda t: (open(__import__("os").environ["INKNHUE_LAMBDA_MARKER"], "w").write("ran"), t)[1],
                 name="writes_a_file")(y)
    model = keras.Model(x, L.Conv2D(2, 1, name="after")(y), name="lambda")
    randomize(model)
    path = HERE / "lambda.h5"
    model.save(path, include_optimizer=False)
    marker.unlink(missing_ok=True)  # building the model ran it once
    config = json.loads(h5py.File(path, "r").attrs["model_config"])
    entry = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Lambda")
    assert entry["config"]["function_type"] == "lambda", entry["config"]
    keras.models.load_model(path, compile=False)  # Keras runs the bytecode (safe_mode or not, for HDF5)
    assert marker.exists(), "the fixture's Lambda must write its file when Keras loads it"
    marker.unlink()
    marker.parent.rmdir()
    print(f"lambda: Keras loading it writes $INKNHUE_LAMBDA_MARKER; {path.stat().st_size} bytes")


def unknown_layer():
    x = L.Input((None, None, 3), name="image")
    y = L.Conv2D(3, 3, padding="same", name="conv")(x)
    y = L.LayerNormalization(name="layer_norm")(y)
    model = keras.Model(x, y, name="unknown")
    path = HERE / "unknown.h5"
    model.save(path, include_optimizer=False)
    print(f"unknown: {path.stat().st_size} bytes")


def weights_only():
    x = L.Input((None, None, 3), name="image")
    model = keras.Model(x, L.Conv2D(2, 3, name="conv")(x))
    path = HERE / "weights_only.h5"
    model.save_weights(path)
    print(f"weights_only: {path.stat().st_size} bytes")


def main() -> int:
    print(f"TensorFlow {tf.__version__}, tf-keras {keras.__version__}, h5py {h5py.__version__}")
    for make in (conv, deconv, norm, dense, activations, merge, pool, sequential, tf1_bilinear, tf1_sequential,
                 lambda_writes_a_file, unknown_layer, weights_only):
        make()
    total = sum(p.stat().st_size for p in HERE.iterdir() if p.suffix in (".h5", ".npz"))
    print(f"all fixtures: {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
