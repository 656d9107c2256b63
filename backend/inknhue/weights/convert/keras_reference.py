"""TensorFlow's own outputs for Keras model files, to check inkn'hue's conversion against.

A standalone script for a Python that has TensorFlow; inkn'hue never imports it (inkn'hue does
not need TensorFlow). With Style2Paints' `.net` files in DIR:

    python3 -m venv tfvenv
    tfvenv/bin/pip install tensorflow-cpu tf-keras h5py
    TF_USE_LEGACY_KERAS=1 tfvenv/bin/python keras_reference.py DIR -o REF
    inknhue style2paints inspect DIR --reference REF

For each DIR/NAME.net (or .h5) it writes REF/NAME.npz: seeded random inputs `in0`, `in1`, ...
(uniform in [0, 1), batch 1, None sizes replaced by --size) in the model's input order,
TensorFlow's outputs `out0`, `out1`, ... and `tensorflow_version`. Plain arrays only: inkn'hue
reads them with `allow_pickle=False`.

Loading a model with Keras runs the Python code of its Lambda layers, if it has any (tf-keras's
safe_mode does not stop that for HDF5 files). This script looks for Lambda layers in the
model's config first and skips such a file unless --allow-lambda is given: use that only for
files you trust.

TF 2 runs UpSampling2D(interpolation="bilinear") with half-pixel centres, TF 1.14 (what
Style2Paints V4.5 ran) without; `inspect --reference` converts with the rule of the reference's
TensorFlow so that the comparison is like for like.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def lambda_layers(path: Path) -> list[str]:
    """The names of the Lambda layers in a Keras HDF5 file's model_config (read as JSON)."""
    import json

    import h5py

    with h5py.File(path, "r") as f:
        config = f.attrs.get("model_config")
    if config is None:
        return []
    found = []

    def walk(value):
        if isinstance(value, dict):
            if value.get("class_name") == "Lambda":
                found.append(str(value.get("name") or value.get("config", {}).get("name")))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(json.loads(config.decode("utf-8") if isinstance(config, bytes) else config))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", metavar="DIR", help="a folder of .net / .h5 Keras model files")
    parser.add_argument("-o", "--output", metavar="REF", required=True, help="where to write NAME.npz files")
    parser.add_argument("--size", type=int, default=128, help="the side of unknown spatial axes (default 128)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--allow-lambda", action="store_true",
                        help="let Keras run Lambda layers' code (only for files you trust)")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import numpy as np
    import tensorflow as tf

    try:
        import tf_keras as keras
    except ImportError:
        keras = tf.keras

    source, out = Path(args.directory), Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in source.iterdir() if p.suffix.lower() in (".net", ".h5"))
    with_hdf5 = []
    for path in files:
        with open(path, "rb") as f:
            if f.read(8) == b"\x89HDF\r\n\x1a\n":
                with_hdf5.append(path)
    for path in with_hdf5:
        lambdas = lambda_layers(path)
        if lambdas and not args.allow_lambda:
            print(f"{path.name}: skipped: its Lambda layers ({', '.join(lambdas)}) would run Python code "
                  f"from the file when Keras loads it (--allow-lambda for files you trust)", file=sys.stderr)
            continue
        try:
            model = keras.models.load_model(path, compile=False)
        except Exception as exc:  # noqa: BLE001 - reported, the other files go on
            print(f"{path.name}: Keras cannot load it: {exc}", file=sys.stderr)
            continue
        rng = np.random.default_rng(args.seed)
        inputs = []
        for tensor in model.inputs:
            shape = [1] + [args.size if d is None else int(d) for d in tensor.shape[1:]]
            inputs.append(rng.uniform(0.0, 1.0, shape).astype(np.float32))
        outputs = model(inputs if len(inputs) > 1 else inputs[0], training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        arrays = {f"in{i}": a for i, a in enumerate(inputs)}
        arrays.update({f"out{i}": np.asarray(o, dtype=np.float32) for i, o in enumerate(outputs)})
        arrays["tensorflow_version"] = np.array(tf.__version__)
        np.savez(out / f"{path.stem}.npz", **arrays)
        print(f"{path.name}: {len(inputs)} inputs, {len(outputs)} outputs -> {out / (path.stem + '.npz')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
