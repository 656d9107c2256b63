"""`inknhue style2paints inspect DIR`: what inkn'hue makes of a folder of Keras `.net` files.

For each `*.net` / `*.h5` file: the Keras version and backend, the inputs and outputs with their
shapes, the layer types with their counts and whether each is supported, what is refused and
why, and the conversion's result: converted (into a temporary folder, then loaded and run once
on a small input) with the parameter count, or the error. This is how the first person with
Style2Paints' real files tells us what is missing.

With `--reference REF`, a folder written by `keras_reference.py` (TensorFlow's own outputs for
the same files, made in a Python that has TensorFlow), each converted model is run on the
reference's inputs and its outputs compared with TensorFlow's.

The files are anyone's: the converter refuses what a file cannot hold (keras_h5.py), and the
trial run is bounded: its inputs hold at most `MAX_TRIAL_ELEMENTS` values, and a pass on the
meta device first finds any layer whose output would exceed `MAX_TRIAL_TENSOR_BYTES`. The
scratch folder (`runtime.scratch`, `inknhue-keras-PID-*`) goes when the command ends, also
on SIGTERM; the folders of killed runs are swept at the next start.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ...errors import InputError, WeightsError
from ...networks import keras as runtime
from ...runtime import scratch
from . import keras_h5

#: the side of the spatial axes a model without fixed sizes is run at once (Style2Paints works at
#: multiples of 64; keras_reference.py's default too)
TRIAL_SIZE = 128
#: the most values the trial inputs of one model may hold together (4096 x 4096 x 4: 256 MB)
MAX_TRIAL_ELEMENTS = 4096 * 4096 * 4
#: the largest tensor a layer may make in the trial run (4 GB)
MAX_TRIAL_TENSOR_BYTES = 4 << 30
SCRATCH_PREFIX = "inknhue-keras"
REFERENCE_SCRIPT = Path(__file__).with_name("keras_reference.py")


def _shape(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")" if shape else "(?)"


def _size(count: int) -> str:
    if count >= 1e9:
        return f"{count / 1e9:.1f} GB"
    return f"{count / 1e6:.1f} MB" if count >= 1e5 else f"{count / 1e3:.1f} KB"


def _trial_shapes(model: runtime.KerasGraph, size: int = TRIAL_SIZE) -> list[tuple[int, ...]]:
    return [tuple([1] + [size if d is None else d for d in shape[1:]]) for shape in model.input_shapes]


def _trial_refusal(graph_path: Path, shapes: list[tuple[int, ...]]) -> str | None:
    """Why the trial run would ask for too much memory, or None: the inputs' size, then each
    layer's output from a pass on the meta device (no memory, no arithmetic)."""
    values = sum(math.prod(shape) for shape in shapes)
    if values > MAX_TRIAL_ELEMENTS:
        return (f"its inputs {', '.join(map(_shape, shapes))} would take {_size(4 * values)}, more than the "
                f"{_size(4 * MAX_TRIAL_ELEMENTS)} a trial run may use")
    model = runtime.build(runtime.read_graph(graph_path), "meta")
    largest: list[tuple[int, str]] = []

    def measure(module, inputs, output):
        for tensor in output if isinstance(output, (list, tuple)) else [output]:
            if isinstance(tensor, torch.Tensor):
                largest.append((tensor.numel() * 4, name_of[module]))
        if largest and max(largest)[0] > MAX_TRIAL_TENSOR_BYTES:
            raise _TooLarge()

    name_of = {module: key for key, module in model.layers.items()}
    hooks = [module.register_forward_hook(measure) for module in model.layers.values()]
    try:
        with torch.inference_mode():
            model(*[torch.empty(shape, device="meta") for shape in shapes])
    except _TooLarge:
        size, layer = max(largest)
        return (f"its layer {layer!r} would make a tensor of {_size(size)}, more than the "
                f"{_size(MAX_TRIAL_TENSOR_BYTES)} a trial run may use")
    except (RuntimeError, ValueError, NotImplementedError):
        return None  # the real run reports what is wrong
    finally:
        for hook in hooks:
            hook.remove()
    return None


class _TooLarge(Exception):
    pass


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
    with scratch.folder(SCRATCH_PREFIX) as folder:
        started = time.perf_counter()
        try:
            converted = keras_h5.convert(path, folder / path.stem, bilinear=bilinear)
            model = runtime.load(folder / path.stem)
        except WeightsError as exc:
            say(f"  result: not converted: {exc}")
            return False
        seconds = time.perf_counter() - started
        say(f"  result: converted: {converted.parameters:,} parameters in {seconds:.1f} s")
        for warning in model.warnings:
            say(f"  warning: {warning}")
        if reference is None:
            shapes = _trial_shapes(model, size)
            refusal = _trial_refusal(converted.graph_path, shapes)
            if refusal:
                say(f"  runs: not run: {refusal}")
                return False
            inputs = [torch.zeros(shape) for shape in shapes]
        else:
            inputs = [torch.from_numpy(reference[f"in{i}"]) for i in range(len(model.input_shapes))]
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
    for left in scratch.sweep(SCRATCH_PREFIX):
        say(f"removed {left}, left behind by an inspect that was killed")
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
