"""Converted Keras networks: which memory layout runs a U-Net of 3x3 convolutions fastest.

A Keras model takes and gives NHWC tensors. `inknhue.networks.keras` keeps rank-4 tensors
NCHW inside and permutes only at the inputs and outputs. This compares, on the same graph
(Style2Paints V4's "standard U-Net": 3x3 and 4x4 stride-2 convolutions, batch norm, ReLU,
skip concatenations, 4x4 transposed convolutions; widths 32..512 times --width):

  - nchw:           NCHW-contiguous activations (the input permuted and made contiguous);
  - channels_last:  NCHW logical order in NHWC memory (the input's permutation as it is,
                    weights in channels_last), which torch propagates through convolutions;
  - nhwc_per_layer: what a literal NHWC port does: every layer's inputs permuted to NCHW and
                    its output back to NHWC, both copied.

Prints milliseconds per forward (median) and the ratios to `nchw`, on the CPU by default.

    python benchmarks/bench_keras.py [--size 256] [--width 1.0] [--repeat 5] [--device cpu] [--half]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from inknhue.networks import keras


def unet_graph(in_channels: int = 4, out_channels: int = 3, width: float = 1.0) -> dict:
    """Style2Paints V4's make_standard_UNET as a converted graph (lllyasviel/style2paints,
    V4/s2p_v4_server/models.py): the layer sequence, not its weights."""
    layers = [{"name": "input", "class_name": "InputLayer", "config": {"shape": [None, None, None, in_channels]},
               "nodes": []}]

    def add(name, class_name, config, *inputs):
        layers.append({"name": name, "class_name": class_name, "config": config,
                       "nodes": [[[i, 0, 0] for i in inputs]]})
        return name

    def conv(name, filters, kernel, stride, source, transpose=False):
        config = {"filters": max(1, int(filters * width)), "kernel_size": [kernel, kernel],
                  "strides": [stride, stride], "padding": "same", "dilation_rate": [1, 1], "use_bias": True,
                  "activation": "linear"}
        if transpose:
            config["output_padding"] = None
        else:
            config["groups"] = 1
        return add(name, "Conv2DTranspose" if transpose else "Conv2D", config, source)

    def block(name, filters, kernel, stride, source, transpose=False):
        x = conv(name, filters, kernel, stride, source, transpose)
        x = add(f"bn_{name}", "BatchNormalization", {"axis": -1, "epsilon": 1e-3, "center": True, "scale": True}, x)
        return add(f"relu_{name}", "Activation", {"activation": "relu"}, x)

    def concat(name, a, b):
        return add(name, "Concatenate", {"axis": -1}, a, b)

    encoder = [("c0", 32, 3, 1), ("c1", 64, 4, 2), ("c2", 64, 3, 1), ("c3", 128, 4, 2), ("c4", 128, 3, 1),
               ("c5", 256, 4, 2), ("c6", 256, 3, 1), ("c7", 512, 4, 2), ("c8", 512, 3, 1)]
    e, x = {}, "input"
    for name, filters, kernel, stride in encoder:
        x = e[name] = block(name, filters, kernel, stride, x)
    d = block("dc8", 512, 4, 2, concat("cat8", e["c7"], e["c8"]), transpose=True)
    d = block("dc7", 256, 3, 1, d)
    d = block("dc6", 256, 4, 2, concat("cat6", e["c6"], d), transpose=True)
    d = block("dc5", 128, 3, 1, d)
    d = block("dc4", 128, 4, 2, concat("cat4", e["c4"], d), transpose=True)
    d = block("dc3", 64, 3, 1, d)
    d = block("dc2", 64, 4, 2, concat("cat2", e["c2"], d), transpose=True)
    d = block("dc1", 32, 3, 1, d)
    out = conv("dc0", out_channels / width, 3, 1, concat("cat0", e["c0"], d))
    return {"format": keras.GRAPH_FORMAT, "version": keras.GRAPH_VERSION, "name": "standard_unet",
            "inputs": [["input", 0, 0]], "outputs": [[out, 0, 0]], "layers": layers}


def random_model(graph: dict, device: str) -> keras.KerasGraph:
    model = keras.build(graph, device)
    generator = torch.Generator(device="cpu").manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            values = torch.randn(tensor.shape, generator=generator) * 0.05
            if name.endswith("running_var"):
                values = values.abs() + 0.5
            tensor.copy_(values)
    return model.eval()


class PerLayerNHWC(keras.KerasGraph):
    """The literal port: NHWC between layers, each layer's inputs and output copied across."""

    def forward(self, *inputs):
        values = [None] * self._n_slots
        for slot, x in zip(self._input_slots, inputs, strict=True):
            values[slot] = x.contiguous()
        for key, ins, out, free in self._plan:
            args = [keras.to_internal(values[i]).contiguous() for i in ins]
            values[out] = keras.to_keras(self.layers[key](*args)).contiguous()
            for slot in free:
                values[slot] = None
        return [values[slot] for slot in self._output_slots]


def median_ms(fn, repeat: int, device: str) -> float:
    times = []
    for _ in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--half", action="store_true", help="float16 (CUDA)")
    args = parser.parse_args()

    dtype = torch.float16 if args.half else torch.float32
    graph = unet_graph(width=args.width)
    model = random_model(graph, "cpu").to(args.device, dtype)
    naive = PerLayerNHWC(graph)
    naive.load_state_dict(model.state_dict(), assign=True)
    channels_last = random_model(graph, "cpu").to(args.device, dtype)
    channels_last.load_state_dict(model.state_dict())
    channels_last.to(memory_format=torch.channels_last)
    x = torch.rand(1, args.size, args.size, 4, device=args.device, dtype=dtype)
    parameters = keras.parameter_count(model)

    def run(module, prepare):
        with torch.inference_mode():
            return module(prepare(x))

    variants = {
        "nchw": (model, "contiguous"),
        "channels_last": (channels_last, "channels_last"),
        "nhwc_per_layer": (naive, None),
    }
    results, outputs = {}, {}
    for name, (module, layout) in variants.items():
        module.memory_format = layout
        outputs[name] = run(module, lambda t: t)[0]  # warm-up
        results[name] = median_ms(lambda m=module: run(m, lambda t: t), args.repeat, args.device)
    for name in variants:
        torch.testing.assert_close(outputs[name], outputs["nchw"], rtol=1e-2, atol=1e-2)
    threads = torch.get_num_threads()
    print(f"standard U-Net x{args.width}: {parameters / 1e6:.1f} M parameters, input {args.size}x{args.size}, "
          f"{args.device} {str(dtype).split('.')[-1]}, {threads} threads, median of {args.repeat}")
    for name, ms in results.items():
        print(f"  {name:15s} {ms:9.1f} ms   / nchw = {ms / results['nchw']:.2f}")


if __name__ == "__main__":
    main()
