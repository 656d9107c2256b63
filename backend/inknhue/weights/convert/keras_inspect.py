"""`inknhue style2paints inspect DIR`: what inkn'hue makes of a folder of Keras `.net` files.

For each `*.net` / `*.h5` file: the Keras version and backend, the inputs and outputs with their
shapes, the layer types with their counts and whether each is supported, what is refused and
why, and the conversion's result: converted (into a temporary folder, then loaded and run once
on a small input) with the parameter count, or the error. This is how the first person with
Style2Paints' real files tells us what is missing.

With `--reference REF`, a folder written by `keras_reference.py` (TensorFlow's own outputs for
the same files, made in a Python that has TensorFlow), each converted model is run on the
reference's inputs and its outputs compared with TensorFlow's.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ...errors import InputError, WeightsError
from ...networks import keras as runtime
from . import keras_h5

#: the side of the spatial axes a model without fixed sizes is run at once (Style2Paints works at
#: multiples of 64; keras_reference.py's default too)
TRIAL_SIZE = 128
REFERENCE_SCRIPT = Path(__file__).with_name("keras_reference.py")


def _shape(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")" if shape else "(?)"


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 1e5 else f"{count / 1e3:.1f} KB"


def _trial_inputs(model: runtime.KerasGraph, size: int = TRIAL_SIZE) -> list[torch.Tensor]:
    return [torch.zeros([1] + [size if d is None else d for d in shape[1:]]) for shape in model.input_shapes]


def _compare(outputs: list[torch.Tensor], reference: dict[str, np.ndarray]) -> tuple[bool, str]:
    expected = [reference[f"out{i}"] for i in range(len([k for k in reference if k.startswith("out")]))]
    if len(expected) != len(outputs):
        return False, f"{len(outputs)} outputs, the reference has {len(expected)}"
    worst, ok, parts = 0.0, True, []
    for i, (ours, theirs) in enumerate(zip(outputs, expected, strict=True)):
        ours = ours.detach().float().cpu().numpy()
        if ours.shape != theirs.shape:
            return False, f"output {i} is shaped {ours.shape}, TensorFlow's {theirs.shape}"
        difference = float(np.max(np.abs(ours - theirs))) if ours.size else 0.0
        scale = float(np.max(np.abs(theirs))) if theirs.size else 0.0
        ok = ok and difference <= 1e-4 * max(1.0, scale)
        worst = max(worst, difference)
        parts.append(f"{difference:.2g}")
    verdict = "match TensorFlow's" if ok else "DIFFER from TensorFlow's"
    return ok, f"outputs {verdict} (largest difference per output: {', '.join(parts)})"


def inspect_file(path: Path, say: Callable[[str], None], reference_dir: Path | None = None,
                 bilinear: str | None = None, size: int = TRIAL_SIZE) -> bool | None:
    """Report on one file; True if it converts (and matches the reference if given), False if
    not, None if it is not an HDF5 file at all."""
    try:
        described = keras_h5.read(path, bilinear)
    except keras_h5.NotHDF5:
        say(f"{path.name}: not an HDF5 file, skipped (Keras models are HDF5)")
        return None
    except WeightsError as exc:
        say(f"{path.name}: cannot be read: {exc}")
        return False
    say(f"{path.name}: {_size(described.bytes)}, Keras {described.keras_version} ({described.backend}), "
        f"{described.model_class} {described.name!r}")
    say("  inputs:  " + "; ".join(f"{n} {_shape(s)}" for n, s in described.inputs))
    say("  outputs: " + "; ".join(f"{n} {_shape(s)}" for n, s in described.outputs))
    refused_types = {r.class_name for r in described.refusals}
    width = max(len(t) for t in described.layer_types) if described.layer_types else 0
    say("  layer types:")
    for class_name, count in described.layer_types.items():
        if class_name not in refused_types:
            status = "supported"
        elif class_name == "Lambda":
            status = "REFUSED: runs Python code from the file"
        elif class_name in keras_h5.PARSERS:
            status = "supported type, but a config is REFUSED"
        else:
            status = "NOT SUPPORTED"
        say(f"    {count:5d}  {class_name:<{width}}  {status}")
    for refusal in described.refusals:
        say(f"  refused: {refusal}")
    for note in described.notes:
        say(f"  note: {note}")
    if not described.supported:
        count = len(described.refusals)
        say(f"  result: not converted: {count} {'layer is' if count == 1 else 'layers are'} refused (above)")
        return False

    reference = None
    if reference_dir is not None:
        candidate = reference_dir / f"{path.stem}.npz"
        if candidate.exists():
            with np.load(candidate, allow_pickle=False) as data:
                reference = {k: data[k] for k in data.files}
            tf_version = str(reference.get("tensorflow_version", ""))
            if bilinear is None and tf_version and not tf_version.startswith("1.") \
                    and any("bilinear" in note for note in described.notes):
                bilinear = "half_pixel"  # the reference ran TF 2's UpSampling2D
                say(f"  note: compared with the half-pixel bilinear rule of the reference's TensorFlow "
                    f"{tf_version}; the conversion otherwise follows the file's rule")
        else:
            say(f"  reference: {candidate} is missing")
    with tempfile.TemporaryDirectory(prefix="inknhue-keras-") as scratch:
        started = time.perf_counter()
        try:
            converted = keras_h5.convert(path, Path(scratch) / path.stem, bilinear=bilinear)
            model = runtime.load(Path(scratch) / path.stem)
        except WeightsError as exc:
            say(f"  result: not converted: {exc}")
            return False
        seconds = time.perf_counter() - started
        say(f"  result: converted: {converted.parameters:,} parameters in {seconds:.1f} s")
        inputs = (_trial_inputs(model, size) if reference is None else
                  [torch.from_numpy(reference[f"in{i}"]) for i in range(len(model.input_shapes))])
        try:
            started = time.perf_counter()
            with torch.inference_mode():
                outputs = model(*inputs)
            seconds = time.perf_counter() - started
        except (RuntimeError, ValueError, KeyError) as exc:
            say(f"  runs: FAILED on inputs {', '.join(_shape(tuple(x.shape)) for x in inputs)}: "
                f"{str(exc).splitlines()[0]}")
            return False
        say(f"  runs: inputs {', '.join(_shape(tuple(x.shape)) for x in inputs)} -> outputs "
            f"{', '.join(_shape(tuple(o.shape)) for o in outputs)} in {seconds:.2f} s")
        if reference is not None:
            ok, text = _compare(outputs, reference)
            say(f"  reference: {text}")
            return ok
    return True


def inspect_dir(directory: str | Path, say: Callable[[str], None] = print, reference: str | Path | None = None,
                bilinear: str | None = None, size: int = TRIAL_SIZE) -> int:
    """Report on every .net / .h5 file of a folder (or one file); 0 if all convert, else 1."""
    directory = Path(directory).expanduser()
    if directory.is_file():
        files = [directory]
    elif directory.is_dir():
        files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in (".net", ".h5"))
    else:
        raise InputError(f"{directory} is not a folder")
    if not files:
        raise InputError(f"{directory} holds no .net or .h5 files")
    if not 1 <= size <= 4096:
        raise InputError(f"--size must be between 1 and 4096, got {size}")
    reference_dir = Path(reference).expanduser() if reference else None
    if reference_dir is not None and not reference_dir.is_dir():
        raise InputError(f"--reference {reference_dir} is not a folder")
    results = []
    for path in files:
        results.append(inspect_file(path, say, reference_dir, bilinear, size))
        say("")
    models = [r for r in results if r is not None]
    say(f"{sum(bool(r) for r in models)} of {len(models)} Keras files convert"
        + (" and match TensorFlow's outputs" if reference_dir else ""))
    if reference_dir is None and models:
        say(f"to compare with TensorFlow itself: run {REFERENCE_SCRIPT} with a Python that has TensorFlow "
            f"(its docstring says how), then this command again with --reference")
    return 0 if models and all(models) else 1
