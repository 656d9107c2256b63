"""The Keras HDF5 converter and runtime against TensorFlow's own outputs.

The fixtures in tests/data/keras/ were written once by make_fixtures.py with tensorflow-cpu and
tf-keras (see its docstring): NAME.h5 is a small Keras 2 model in HDF5, NAME.npz its inputs
(in0, ...) and TensorFlow's outputs (out0, ...). No TensorFlow is needed here.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from inknhue import cli
from inknhue.errors import WeightsError
from inknhue.networks import keras
from inknhue.weights.convert import keras_h5

DATA = Path(__file__).parent / "data" / "keras"
BACKEND = Path(keras.__file__).resolve().parents[2]
MODELS = ["conv", "deconv", "norm", "dense", "activations", "merge", "pool", "sequential", "tf1_bilinear",
          "tf1_sequential"]


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message, message
    return message


def reference(name: str) -> tuple[list[torch.Tensor], list[np.ndarray]]:
    with np.load(DATA / f"{name}.npz", allow_pickle=False) as data:
        inputs = [torch.from_numpy(data[f"in{i}"]) for i in range(sum(k.startswith("in") for k in data.files))]
        outputs = [data[f"out{i}"] for i in range(sum(k.startswith("out") for k in data.files))]
    return inputs, outputs


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, Path]:
    """Every fixture model converted once: name -> the converted files' stem."""
    folder = tmp_path_factory.mktemp("converted")
    return {name: keras_h5.convert(DATA / f"{name}.h5", folder / name).graph_path.with_suffix("")
            for name in MODELS}


def run(stem: Path, inputs, **kwargs) -> list[np.ndarray]:
    model = keras.load(stem, **kwargs)
    with torch.inference_mode():
        return [o.numpy() for o in model(*inputs)]


# --- against TensorFlow ------------------------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_outputs_match_tensorflow(name, converted):
    inputs, expected = reference(name)
    outputs = run(converted[name], inputs)
    model = keras.load(converted[name])
    assert len(outputs) == len(expected)
    for (layer, _, _), ours, theirs in zip(model.output_names, outputs, expected, strict=True):
        assert ours.shape == theirs.shape, layer
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5, err_msg=f"{name}: {layer}")


@pytest.mark.parametrize("name", ["conv", "deconv", "pool", "dense", "merge"])
def test_nchw_contiguous_memory_gives_the_same_outputs(name, converted):
    inputs, expected = reference(name)
    model = keras.load(converted[name]).to(memory_format=torch.contiguous_format)
    model.memory_format = "contiguous"
    with torch.inference_mode():
        outputs = model(*inputs)
    for ours, theirs in zip(outputs, expected, strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, atol=1e-5)


def test_every_whitelisted_layer_type_is_in_a_fixture():
    covered = set()
    for name in MODELS:
        covered |= set(keras_h5.read(DATA / f"{name}.h5").layer_types)
    assert set(keras.LAYERS) <= covered, sorted(set(keras.LAYERS) - covered)


def test_odd_sizes_and_tf_same_padding(converted):
    inputs, _ = reference("conv")
    assert inputs[0].shape[1:3] == (17, 23)  # odd: stride-2 "same" pads more at the end
    assert keras.same_padding(17, 4, 2) == (1, 2) and keras.same_padding(23, 3, 2) == (1, 1)
    assert keras.same_padding(16, 4, 2) == (1, 1) and keras.same_padding(16, 3, 2) == (0, 1)
    model = keras.load(converted["conv"])
    assert [n for n, _, _ in model.output_names][:3] == ["same3", "s2k4", "s2k3_valid"]
    # and at other odd sizes than the fixture's, the geometry follows
    out = model(torch.zeros(1, 9, 5, 3))
    assert [tuple(o.shape[1:3]) for o in out[:3]] == [(9, 5), (5, 3), (4, 2)]


def test_several_inputs_and_outputs_in_the_models_order(converted):
    model = keras.load(converted["merge"])
    assert [n for n, _, _ in model.input_names] == ["c", "a", "v", "b"]
    assert [n for n, _, _ in model.output_names] == ["cat_c", "add_vector", "sub", "add3", "mul", "avg", "max",
                                                     "min", "cat_h", "cat_w", "mul_reshaped"]
    assert model.input_shapes == [(None, None, None, 2), (None, None, None, 4), (None, 4), (None, None, None, 4)]
    inputs, _ = reference("merge")
    with pytest.raises(ValueError, match="input 'c' must be shaped"):
        model(inputs[1], inputs[0], inputs[2], inputs[3])
    with pytest.raises(ValueError, match="takes 4 inputs"):
        model(inputs[0])


def test_bilinear_upsampling_follows_the_files_keras_version(converted, tmp_path):
    """TF 1.x (Keras 2.2.4) resizes without half-pixel centres, TF 2 with them: each fixture
    matches its own era's rule and not the other one."""
    assert keras_h5.read(DATA / "tf1_bilinear.h5").keras_version == "2.2.4"
    inputs, expected = reference("tf1_bilinear")
    other = keras_h5.convert(DATA / "tf1_bilinear.h5", tmp_path / "tf1_as_tf2", bilinear="half_pixel")
    outputs = run(other.graph_path.with_suffix(""), inputs)
    assert np.max(np.abs(outputs[0] - expected[0])) > 1e-2
    np.testing.assert_allclose(outputs[2], expected[2], atol=1e-5)  # nearest: the same in both eras

    inputs, expected = reference("pool")
    other = keras_h5.convert(DATA / "pool.h5", tmp_path / "pool_as_tf1", bilinear="legacy")
    names = [n for n, _, _ in keras.load(other.graph_path.with_suffix("")).output_names]
    outputs = run(other.graph_path.with_suffix(""), inputs)
    assert np.max(np.abs(outputs[names.index("bilinear2")] - expected[names.index("bilinear2")])) > 1e-2


@pytest.mark.parametrize("version, rule, note", [
    ("2.1.6", "legacy", False), ("2.2.4", "legacy", False), ("2.3.1", "legacy", False),
    ("2.2.4-tf", "legacy", True), ("2.3.0-tf", "half_pixel", False), ("2.4.0", "half_pixel", False),
    ("2.21.0", "half_pixel", False), ("unknown", "legacy", True)])
def test_bilinear_rule_by_version(version, rule, note):
    chosen, text = keras_h5.bilinear_rule(version)
    assert chosen == rule and (text is not None) == note


def test_keras_2_2_4_configs(converted):
    """TF 1.x era forms: class "Model", BatchNormalization called with training=False, integer
    axes, no groups; a Sequential as a bare list of layers without an InputLayer."""
    described = keras_h5.read(DATA / "tf1_bilinear.h5")
    assert (described.model_class, described.keras_version, described.name) == ("Model", "2.2.4", "model_1")
    described = keras_h5.read(DATA / "tf1_sequential.h5")
    assert described.model_class == "Sequential" and described.inputs == [("conv2d_1_input",
                                                                          (None, None, None, 2))]


def test_converted_files_record_their_source(converted):
    graph = json.loads((converted["conv"].parent / "conv.json").read_text())
    assert graph["format"] == keras.GRAPH_FORMAT and graph["keras_version"] == "2.21.0"
    assert graph["source"]["file"] == "conv.h5" and len(graph["source"]["sha256"]) == 64
    assert graph["weights"]["parameters"] == keras.parameter_count(keras.load(converted["conv"])) == 739
    assert not list(converted["conv"].parent.glob(".*.tmp"))


def test_up_to_date(tmp_path):
    source = tmp_path / "tail.net"
    shutil.copy(DATA / "conv.h5", source)
    assert not keras.up_to_date(source, tmp_path / "converted" / "tail")
    keras_h5.convert(source, tmp_path / "converted" / "tail")
    assert keras.up_to_date(source, tmp_path / "converted" / "tail")
    shutil.copy(DATA / "deconv.h5", source)  # the user replaced the file
    assert not keras.up_to_date(source, tmp_path / "converted" / "tail")


def test_load_on_another_dtype(converted):
    inputs, expected = reference("conv")
    outputs = run(converted["conv"], [x.double() for x in inputs], dtype=torch.float64)
    np.testing.assert_allclose(outputs[0], expected[0], rtol=1e-5, atol=1e-5)


def write_keras_2_0_dense_stack(path: Path, layers: int, units: int) -> None:
    """A Sequential of Dense layers as Keras 2.0 wrote it (a bare list of layer configs),
    written with h5py: weights of `layers * units * units * 4` bytes."""
    import h5py

    config = [{"class_name": "Dense", "config": {"name": f"dense_{i + 1}", "units": units, "activation": "relu",
                                                 "use_bias": True, "trainable": True,
                                                 **({"batch_input_shape": [None, units]} if i == 0 else {})}}
              for i in range(layers)]
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.0.8"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": config}).encode()
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = [f"dense_{i + 1}".encode() for i in range(layers)]
        for i in range(layers):
            layer = group.create_group(f"dense_{i + 1}")
            layer.attrs["weight_names"] = [f"dense_{i + 1}/kernel:0".encode(), f"dense_{i + 1}/bias:0".encode()]
            layer[f"dense_{i + 1}/kernel:0"] = rng.normal(0, 0.05, (units, units)).astype(np.float32)
            layer[f"dense_{i + 1}/bias:0"] = rng.normal(0, 0.05, units).astype(np.float32)


def test_conversion_streams_the_weights(tmp_path):
    """A network is never in memory twice: the peak is about two of its tensors, not all of
    them (16 kernels of 1 MB here). Also a Keras 2.0 Sequential in its list form."""
    import tracemalloc

    write_keras_2_0_dense_stack(tmp_path / "stack.h5", layers=16, units=512)
    tracemalloc.start()
    try:
        converted = keras_h5.convert(tmp_path / "stack.h5", tmp_path / "stack")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert converted.parameters == 16 * (512 * 512 + 512)
    assert peak < 4 * 512 * 512 * 4, f"peak {peak} bytes"
    x = torch.randn(2, 512)
    y = keras.load(tmp_path / "stack")(x)[0]
    import h5py

    with h5py.File(tmp_path / "stack.h5", "r") as f:
        expected = x.numpy()
        for i in range(16):
            group = f[f"model_weights/dense_{i + 1}/dense_{i + 1}"]
            expected = np.maximum(expected @ group["kernel:0"][()] + group["bias:0"][()], 0)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-4, atol=1e-5)


# --- refused -------------------------------------------------------------------------------

def test_a_lambda_is_refused_by_name_and_never_run(tmp_path, monkeypatch, capsys):
    """The fixture's Lambda writes $INKNHUE_LAMBDA_MARKER when Keras loads it (make_fixtures.py
    checks that); here neither converting nor inspecting it writes anything."""
    marker = tmp_path / "lambda-ran"
    monkeypatch.setenv("INKNHUE_LAMBDA_MARKER", str(marker))
    with pytest.raises(WeightsError) as excinfo:
        keras_h5.convert(DATA / "lambda.h5", tmp_path / "out" / "lambda")
    message = one_line(excinfo)
    assert "layer 'writes_a_file' (Lambda) is refused" in message and "Python code" in message
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    (tmp_path / "models").mkdir()
    shutil.copy(DATA / "lambda.h5", tmp_path / "models" / "head.net")
    assert cli.main(["style2paints", "inspect", str(tmp_path / "models")]) == 1
    report = capsys.readouterr().out
    assert "Lambda" in report and "REFUSED" in report and "writes_a_file" in report
    assert not marker.exists()


def test_no_code_from_model_files():
    """h5py is imported in one module only; nothing there or in the runtime unmarshals,
    unpickles or evaluates."""
    importers = [p.relative_to(BACKEND).as_posix() for p in BACKEND.rglob("*.py")
                 if re.search(r"^\s*(import h5py|from h5py)", p.read_text(encoding="utf-8"), re.M)]
    # keras_reference.py is a standalone script for a TensorFlow venv, which nothing imports
    assert sorted(importers) == ["inknhue/weights/convert/keras_h5.py", "inknhue/weights/convert/keras_reference.py"]
    for path in BACKEND.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any("keras_reference" in n for n in names), path
    for module in (keras_h5, keras):
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module and not node.level}
        assert not imported & {"marshal", "pickle", "dill", "keras", "tf_keras", "tensorflow"}, module.__name__
        called = {ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
        assert not called & {"eval", "exec", "compile", "torch.load", "np.load", "__import__"}, module.__name__


def test_an_unknown_layer_type_is_refused_by_name(tmp_path):
    with pytest.raises(WeightsError) as excinfo:
        keras_h5.convert(DATA / "unknown.h5", tmp_path / "unknown")
    assert "layer 'layer_norm' (LayerNormalization) is a layer type that is not supported" in one_line(excinfo)


@pytest.mark.parametrize("damage", ["truncated", "half", "garbage", "empty", "weights_only"])
def test_a_damaged_file_is_refused_in_one_line(damage, tmp_path):
    path = tmp_path / "head.net"
    data = (DATA / "merge.h5").read_bytes()
    if damage == "truncated":
        path.write_bytes(data[:4000])
    elif damage == "half":
        path.write_bytes(data[:len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 8)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        shutil.copy(DATA / "weights_only.h5", path)
    with pytest.raises(WeightsError) as excinfo:
        keras_h5.convert(path, tmp_path / "out" / "head")
    message = one_line(excinfo)
    assert str(path) in message
    assert {"truncated": "damaged", "half": "damaged", "garbage": "not an HDF5 file", "empty": "empty",
            "weights_only": "weights only"}[damage] in message
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_file_whose_weights_do_not_fit_its_config_is_refused(tmp_path):
    import h5py

    path = tmp_path / "conv.h5"
    shutil.copy(DATA / "conv.h5", path)
    with h5py.File(path, "r+") as f:
        kernel = f["model_weights/same3/same3/kernel:0"]
        del f["model_weights/same3/same3/kernel:0"]
        f["model_weights/same3/same3/kernel:0"] = np.zeros((3, 3, 3, 5), np.float32)
        assert kernel is not None
    with pytest.raises(WeightsError) as excinfo:
        keras_h5.convert(path, tmp_path / "conv")
    assert "layer 'same3' (Conv2D)" in one_line(excinfo) and "(4, 3, 3, 3)" in one_line(excinfo)


# --- converted files tampered with ------------------------------------------------------

@pytest.fixture
def conv_copy(tmp_path) -> Path:
    return keras_h5.convert(DATA / "conv.h5", tmp_path / "conv").graph_path.with_suffix("")


def rewrite_weights(stem: Path, change) -> None:
    from safetensors.torch import load_file, save_file

    path = stem.with_suffix(".safetensors")
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))
    graph = json.loads(stem.with_suffix(".json").read_text())
    graph["weights"]["bytes"] = path.stat().st_size
    stem.with_suffix(".json").write_text(json.dumps(graph))


def test_a_missing_tensor_is_refused(conv_copy):
    rewrite_weights(conv_copy, lambda t: t.pop("layers.grouped.weight"))
    with pytest.raises(WeightsError) as excinfo:
        keras.load(conv_copy)
    assert "lacks the tensor layers.grouped.weight" in one_line(excinfo)


def test_a_tensor_of_the_wrong_shape_is_refused(conv_copy):
    rewrite_weights(conv_copy, lambda t: t.update({"layers.s2k4.bias": torch.zeros(5)}))
    with pytest.raises(WeightsError) as excinfo:
        keras.load(conv_copy)
    assert "layers.s2k4.bias is shaped (5,), the graph needs (4,)" in one_line(excinfo)


def test_an_extra_tensor_is_refused(conv_copy):
    rewrite_weights(conv_copy, lambda t: t.update({"layers.extra.weight": torch.zeros(1)}))
    with pytest.raises(WeightsError, match="unexpected tensor layers.extra.weight"):
        keras.load(conv_copy)


def test_a_truncated_weights_file_is_refused(conv_copy):
    path = conv_copy.with_suffix(".safetensors")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(WeightsError) as excinfo:
        keras.load(conv_copy)
    assert "conv.safetensors" in one_line(excinfo)
    graph = json.loads(conv_copy.with_suffix(".json").read_text())
    del graph["weights"]["bytes"]  # the size check aside, safetensors' own check refuses it
    conv_copy.with_suffix(".json").write_text(json.dumps(graph))
    with pytest.raises(WeightsError, match="not readable safetensors"):
        keras.load(conv_copy)


@pytest.mark.parametrize("edit, words", [
    (lambda g: g["layers"][1].update(class_name="Lambda"), "layer type Lambda is not supported"),
    (lambda g: g["layers"][1]["config"].update(padding="causal"), "padding must be one of same, valid"),
    (lambda g: g["layers"][1]["nodes"][0][0].__setitem__(0, "nowhere"), "waits for 'nowhere'"),
    (lambda g: g.update(version=99), "graph version 99"),
    (lambda g: g.update(outputs=[["image", 0, 0], ["ghost", 0, 0]]), "model output 'ghost'"),
])
def test_a_tampered_graph_is_refused(conv_copy, edit, words):
    path = conv_copy.with_suffix(".json")
    graph = json.loads(path.read_text())
    edit(graph)
    path.write_text(json.dumps(graph))
    with pytest.raises(WeightsError) as excinfo:
        keras.load(conv_copy)
    assert words in one_line(excinfo)


def test_a_graph_that_is_not_json_is_refused(conv_copy):
    conv_copy.with_suffix(".json").write_bytes(b"\x80\x04\x95 not json")
    with pytest.raises(WeightsError, match="not valid JSON"):
        keras.load(conv_copy)


def test_missing_converted_files(tmp_path):
    with pytest.raises(WeightsError, match="missing: convert the Keras model first"):
        keras.load(tmp_path / "head")


# --- inkn'hue style2paints inspect -------------------------------------------------------

def test_inspect_reports_each_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("INKNHUE_LAMBDA_MARKER", str(tmp_path / "lambda-ran"))
    models = tmp_path / "nets"
    models.mkdir()
    for source, name in (("conv.h5", "tail.net"), ("lambda.h5", "reader.net"), ("unknown.h5", "head.net"),
                         ("tf1_bilinear.h5", "neck.net")):
        shutil.copy(DATA / source, models / name)
    (models / "refs.net").write_bytes(b"\x1f\x8b\x08\x00 a gzip'd pickle, never opened as one")
    (models / "broken.net").write_bytes((DATA / "merge.h5").read_bytes()[:3000])
    assert cli.main(["style2paints", "inspect", str(models)]) == 1
    report = capsys.readouterr().out
    sections = {block.split(":", 1)[0]: block for block in report.strip().split("\n\n")}
    assert "Keras 2.21.0 (tensorflow), Functional 'conv'" in sections["tail.net"]
    assert "image (None, None, None, 3)" in sections["tail.net"]
    assert re.search(r"8  Conv2D\s+supported", sections["tail.net"])
    assert "result: converted: 739 parameters" in sections["tail.net"]
    assert "runs: inputs (1, 128, 128, 3)" in sections["tail.net"]
    assert re.search(r"1  Lambda\s+REFUSED", sections["reader.net"])
    assert "not converted" in sections["reader.net"]
    assert re.search(r"1  LayerNormalization\s+NOT SUPPORTED", sections["head.net"])
    assert "layer 'layer_norm' (LayerNormalization)" in sections["head.net"]
    assert "Keras 2.2.4 (tensorflow), Model 'model_1'" in sections["neck.net"]
    assert "legacy rule" in sections["neck.net"] and "converted: 96 parameters" in sections["neck.net"]
    assert "not an HDF5 file, skipped" in sections["refs.net"]
    assert "damaged" in sections["broken.net"]
    assert "2 of 5 Keras files convert" in report
    assert not (tmp_path / "lambda-ran").exists()


def test_inspect_against_tensorflows_outputs(tmp_path, capsys):
    models, references = tmp_path / "nets", tmp_path / "ref"
    models.mkdir()
    references.mkdir()
    for name in ("merge", "tf1_bilinear"):
        shutil.copy(DATA / f"{name}.h5", models / f"{name}.net")
        with np.load(DATA / f"{name}.npz") as data:
            arrays = {k: data[k] for k in data.files}
        if name == "tf1_bilinear":
            arrays["tensorflow_version"] = np.array("1.14.0")  # the legacy rule is the reference's
        np.savez(references / f"{name}.npz", **arrays)
    assert cli.main(["style2paints", "inspect", str(models), "--reference", str(references)]) == 0
    report = capsys.readouterr().out
    assert report.count("outputs match TensorFlow's") == 2
    assert "2 of 2 Keras files convert and match TensorFlow's outputs" in report

    with np.load(DATA / "merge.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["out3"] = arrays["out3"] + 0.5
    np.savez(references / "merge.npz", **arrays)
    assert cli.main(["style2paints", "inspect", str(models / "merge.net"), "--reference", str(references)]) == 1
    assert "DIFFER from TensorFlow's" in capsys.readouterr().out


def test_inspect_needs_model_files(tmp_path, capsys):
    assert cli.main(["style2paints", "inspect", str(tmp_path)]) == 1
    assert "holds no .net or .h5 files" in capsys.readouterr().err


def test_inspect_runs_at_the_size_asked(tmp_path, capsys):
    shutil.copy(DATA / "conv.h5", tmp_path / "tail.net")
    assert cli.main(["style2paints", "inspect", str(tmp_path / "tail.net"), "--size", "33"]) == 0
    assert "runs: inputs (1, 33, 33, 3) -> outputs (1, 33, 33, 4), (1, 17, 17, 4)" in capsys.readouterr().out


# --- hostile files (issue 23): only the file's own bytes, only as many as it declares ----------

def write_conv_model(path: Path, input_shape=(None, None, 3), filters: int = 4, kernel_size=(3, 3),
                     channels: int = 3, make_kernel=None, model_config: str | None = None) -> None:
    """A one-layer Sequential Conv2D model written with h5py; `make_kernel(group, name, shape)`
    writes the kernel dataset instead of plain zeros (external storage, a chunked bomb...)."""
    import h5py

    config = [{"class_name": "Conv2D", "config": {
        "name": "conv", "filters": filters, "kernel_size": list(kernel_size), "strides": [1, 1], "padding": "same",
        "data_format": "channels_last", "dilation_rate": [1, 1], "activation": "linear", "use_bias": True,
        "batch_input_shape": [None, *input_shape[:2], channels]}}]
    shape = (*kernel_size, channels, filters)
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.2.4"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = (model_config or json.dumps({"class_name": "Sequential", "config": config})).encode()
        group = f.create_group("model_weights").create_group("conv")
        group.attrs["weight_names"] = [b"conv/kernel:0", b"conv/bias:0"]
        if make_kernel is None:
            group["conv/kernel:0"] = np.full(shape, 0.25, np.float32)
        else:
            make_kernel(group, "conv/kernel:0", shape)
        group["conv/bias:0"] = np.zeros(filters, np.float32)


def converted_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file()) if folder.exists() else b""


def test_external_storage_cannot_copy_a_local_file_into_the_weights(tmp_path, capsys):
    """HDF5 external storage reads the raw bytes of any file: /etc/passwd here would come back
    out of the safetensors. Refused by name before any data is read."""
    import h5py

    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"root:x:0:0:SECRET".ljust(3 * 3 * 3 * 4 * 4, b"!"))
    path = tmp_path / "head.net"
    write_conv_model(path, make_kernel=lambda group, name, shape: group.create_dataset(
        name, shape, "<f4", external=[(str(secret), 0, h5py.h5f.UNLIMITED)]))
    with pytest.raises(WeightsError) as excinfo:
        keras_h5.convert(path, tmp_path / "out" / "head")
    message = one_line(excinfo)
    assert "conv/kernel:0" in message and "external file" in message and "secret.bin" in message
    assert b"SECRET" not in converted_bytes(tmp_path / "out")
    with pytest.raises(WeightsError, match="external file"):
        keras_h5.read(path)
    assert cli.main(["style2paints", "inspect", str(path)]) == 1
    report = capsys.readouterr().out
    assert "cannot be read" in report and "external file" in report and "SECRET" not in report


def test_external_storage_on_a_fifo_is_refused_without_blocking(tmp_path):
    import threading

    import h5py

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    path = tmp_path / "head.net"
    write_conv_model(path, make_kernel=lambda group, name, shape: group.create_dataset(
        name, shape, "<f4", external=[(str(fifo), 0, h5py.h5f.UNLIMITED)]))
    outcome = []

    def convert():
        try:
            keras_h5.convert(path, tmp_path / "out" / "head")
        except WeightsError as exc:
            outcome.append(str(exc))

    thread = threading.Thread(target=convert, daemon=True)
    thread.start()
    thread.join(30)
    if thread.is_alive():  # blocked opening the FIFO: let it go, then fail
        open(fifo, "wb").close()
        thread.join(10)
        pytest.fail("converting a file with external storage on a FIFO blocked")
    assert outcome and "external file" in outcome[0] and "\n" not in outcome[0]


def test_external_links_and_virtual_datasets_are_refused_by_name(tmp_path):
    import h5py

    other = tmp_path / "other.h5"
    write_conv_model(other)
    linked = tmp_path / "linked.net"
    write_conv_model(linked)
    with h5py.File(linked, "r+") as f:
        del f["model_weights"]
        f["model_weights"] = h5py.ExternalLink(str(other), "/model_weights")
    virtual = tmp_path / "virtual.net"

    def make_virtual(group, name, shape):
        layout = h5py.VirtualLayout(shape, "<f4")
        layout[...] = h5py.VirtualSource(str(other), "/model_weights/conv/conv/kernel:0", shape)
        group.create_virtual_dataset(name, layout)

    write_conv_model(virtual, make_kernel=make_virtual)
    for path, words in ((linked, "is an external link to the file"), (virtual, "is a virtual dataset")):
        with pytest.raises(WeightsError) as excinfo:
            keras_h5.convert(path, tmp_path / "out" / path.stem)
        message = one_line(excinfo)
        assert words in message and str(path) in message
        assert ("model_weights" if path is linked else "conv/kernel:0") in message
        assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_small_file_cannot_declare_a_huge_network(tmp_path):
    """The model's declared parameters are bounded before anything is allocated: a 3x3x2048x32768
    kernel (604 million parameters with the bias, 2.4 GB) in a file of a few KB is refused by name."""
    import h5py

    path = tmp_path / "bomb.net"
    write_conv_model(path, filters=32768, channels=2048, make_kernel=lambda group, name, shape: group.create_dataset(
        name, shape, "<f4", chunks=(1, 1, 64, 64)))
    assert path.stat().st_size < 200_000
    described = keras_h5.read(path)
    assert not described.supported
    assert "declares 604,012,544 parameters" in str(described.refusals[0])
    with pytest.raises(WeightsError) as excinfo:
        keras_h5.convert(path, tmp_path / "out" / "bomb")
    assert "parameters" in one_line(excinfo)
    assert h5py.is_hdf5(path)


def test_a_tensor_must_be_stored_in_full_and_all_of_them_fit_in_the_file(tmp_path, capsys):
    """A chunked dataset never written reads as zeros: 64 MB declared in a file of a few KB is
    refused, not converted; so is one dataset named by every layer (16 MB from one)."""
    path = tmp_path / "sparse.net"
    write_conv_model(path, filters=2048, channels=1024, kernel_size=(3, 3),
                     make_kernel=lambda group, name, shape: group.create_dataset(name, shape, "<f4",
                                                                                 chunks=(1, 1, 64, 64)))
    assert path.stat().st_size < 100_000
    with pytest.raises(WeightsError) as excinfo:
        keras_h5.convert(path, tmp_path / "out" / "sparse")
    assert "declares 75,497,472 bytes but the file holds 0 of them" in one_line(excinfo)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    assert cli.main(["style2paints", "inspect", str(path)]) == 1
    assert "declares 75,497,472 bytes but the file holds 0" in capsys.readouterr().out

    import h5py

    shared = tmp_path / "shared.h5"
    write_keras_2_0_dense_stack(shared, layers=16, units=512)
    compact = tmp_path / "compact.h5"  # the same model, every kernel a hard link to the first one's bytes
    with h5py.File(shared, "r") as f, h5py.File(compact, "w") as out:
        for key, value in f.attrs.items():
            out.attrs[key] = value
        first = None
        for i in range(1, 17):
            layer = f"model_weights/dense_{i}"
            group = out.create_group(layer)
            group.attrs["weight_names"] = f[layer].attrs["weight_names"]
            group[f"dense_{i}/bias:0"] = f[f"{layer}/dense_{i}/bias:0"][()]
            if first is None:
                group[f"dense_{i}/kernel:0"] = f[f"{layer}/dense_{i}/kernel:0"][()]
                first = group[f"dense_{i}/kernel:0"]
            else:
                group[f"dense_{i}/kernel:0"] = first
    shared = compact
    assert shared.stat().st_size < 2 << 20
    with pytest.raises(WeightsError) as excinfo:
        keras_h5.convert(shared, tmp_path / "out" / "shared")
    assert "more than the file's own" in one_line(excinfo)


def test_a_rank_0_kernel_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "scalar.net"
    write_conv_model(path, make_kernel=lambda group, name, shape: group.create_dataset(name, data=np.float32(1)))
    with pytest.raises(WeightsError) as excinfo:
        keras_h5.convert(path, tmp_path / "out" / "scalar")
    assert "is shaped ()" in one_line(excinfo)
    assert cli.main(["style2paints", "inspect", str(path)]) == 1
    assert "is shaped ()" in capsys.readouterr().out


def test_inspects_trial_run_is_bounded(tmp_path, capsys, monkeypatch):
    """A fixed 8192 x 8192 input would take 805 MB (a 60000 x 60000 one 43 GB): not run, said in
    a line; and a layer whose output would be too large is found on the meta device first."""
    path = tmp_path / "wide.net"
    write_conv_model(path, input_shape=(8192, 8192), filters=1)
    assert cli.main(["style2paints", "inspect", str(path)]) == 1
    report = capsys.readouterr().out
    assert "result: converted" in report
    assert "runs: not run: its inputs (1, 8192, 8192, 3) would take 805.3 MB" in report

    from inknhue.weights.convert import keras_inspect

    monkeypatch.setattr(keras_inspect, "MAX_TRIAL_TENSOR_BYTES", 1 << 20)
    write_conv_model(path, filters=64)
    assert cli.main(["style2paints", "inspect", str(path)]) == 1  # 128 x 128 x 64 floats: 4 MB
    assert "runs: not run: its layer 'conv' would make a tensor of 4.2 MB" in capsys.readouterr().out


def test_json_nested_100000_deep_is_a_one_line_error(tmp_path, conv_copy):
    deep = "[" * 100_000 + "]" * 100_000
    conv_copy.with_suffix(".json").write_text(deep)
    with pytest.raises(WeightsError) as excinfo:
        keras.load(conv_copy)
    assert "nested too deeply" in one_line(excinfo)
    path = tmp_path / "deep.net"
    write_conv_model(path, model_config='{"class_name": "Sequential", "config": ' + deep + "}")
    with pytest.raises(WeightsError) as excinfo:
        keras_h5.read(path)
    assert "model_config is nested too deeply" in one_line(excinfo)


def test_only_regular_files_are_read(tmp_path, conv_copy):
    """A FIFO is refused without blocking, /dev/zero behind a symlink without reading it."""
    fifo = tmp_path / "head.net"
    os.mkfifo(fifo)
    with pytest.raises(WeightsError) as excinfo:
        keras_h5.read(fifo)
    assert "is a FIFO, not a regular file" in one_line(excinfo)
    graph = conv_copy.with_suffix(".json")
    graph.unlink()
    graph.symlink_to("/dev/zero")
    with pytest.raises(WeightsError) as excinfo:
        keras.load(conv_copy)
    assert "is a character device, not a regular file" in one_line(excinfo)
    graph.unlink()
    os.mkfifo(graph)
    with pytest.raises(WeightsError, match="is a FIFO"):
        keras.load(conv_copy)


def write_conv_stack(path: Path, layers: int, channels: int) -> None:
    """A Sequential of `layers` 3x3 Conv2D layers of `channels` channels (slow on a large input)."""
    import h5py

    config = [{"class_name": "Conv2D", "config": {
        "name": f"conv_{i}", "filters": channels, "kernel_size": [3, 3], "strides": [1, 1], "padding": "same",
        "data_format": "channels_last", "dilation_rate": [1, 1], "activation": "relu", "use_bias": True,
        **({"batch_input_shape": [None, None, None, channels]} if i == 0 else {})}} for i in range(layers)]
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.2.4"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": config}).encode()
        for i in range(layers):
            group = f.create_group(f"model_weights/conv_{i}")
            group.attrs["weight_names"] = [f"conv_{i}/kernel:0".encode(), f"conv_{i}/bias:0".encode()]
            group[f"conv_{i}/kernel:0"] = rng.normal(0, 0.1, (3, 3, channels, channels)).astype(np.float32)
            group[f"conv_{i}/bias:0"] = np.zeros(channels, np.float32)


def test_sigterm_during_inspect_leaves_no_scratch_folder(tmp_path):
    """A timeout or a kill (SIGTERM) while inspect runs a model: the scratch folder goes with it."""
    import signal
    import subprocess
    import sys

    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    path = tmp_path / "slow.net"
    write_conv_stack(path, layers=40, channels=16)
    env = dict(os.environ, TMPDIR=str(scratch_root), PYTHONUNBUFFERED="1")
    process = subprocess.Popen([str(Path(sys.executable).parent / "inknhue"), "style2paints", "inspect", str(path),
                                "--size", "2048"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in process.stdout:  # converted: now it runs the model for minutes
            if "result:" in line:
                break
        assert "result: converted" in line
        left = list(scratch_root.glob("inknhue-keras-*"))
        assert len(left) == 1 and any(left[0].glob("*.safetensors"))
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert list(scratch_root.glob("inknhue-keras-*")) == [], f"left behind (exit status {process.returncode})"
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "inknhue: stopped by SIGTERM" in err
    assert left[0].name.startswith(f"inknhue-keras-{process.pid}-")  # whose it was, for a later sweep


def test_the_next_inspect_sweeps_the_scratch_folders_of_killed_runs(tmp_path, monkeypatch, capsys):
    import subprocess
    import sys
    import tempfile
    import time

    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)
    killed = root / f"inknhue-keras-{dead}-k1ll3d00"  # a run killed outright (SIGKILL): its pid is gone
    killed.mkdir()
    (killed / "head.safetensors").write_bytes(b"\0" * 4096)
    running = root / f"inknhue-keras-{os.getpid()}-runn1ng0"  # another inspect that still runs
    running.mkdir()
    old = root / "inknhue-keras-0ld2ab_c"  # unnamed, from before scratch folders said whose they are
    old.mkdir()
    os.utime(old, (time.time() - 3 * 86400,) * 2)
    recent = root / "inknhue-keras-r3cent_x"
    recent.mkdir()
    shutil.copy(DATA / "conv.h5", tmp_path / "tail.net")
    assert cli.main(["style2paints", "inspect", str(tmp_path / "tail.net")]) == 0
    assert sorted(p.name for p in root.glob("inknhue-keras-*")) == sorted([running.name, recent.name])
    report = capsys.readouterr().out
    assert f"removed {killed}, left behind by an inspect that was killed" in report and str(old) in report
