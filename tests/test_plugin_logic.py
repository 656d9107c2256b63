"""The plugin's decisions, without Krita or Qt (plugin/inknhue_krita/logic.py, config.py, vendor.py)."""

import builtins
import json

import pytest
from inknhue_krita import config, vendor
from inknhue_krita.logic import (BlendThrottle, Rect, box_max_size, document_format, fully_opaque, layer_name,
                                 preview_size, progress_text, progress_value, ratio_to_slider, slider_to_ratio,
                                 snap_max_size, work_area)


def test_without_a_selection_the_whole_image_is_colorized():
    assert work_area((2480, 3508), None) == Rect(0, 0, 2480, 3508)


def test_a_selection_is_colorized_by_its_bounding_box_clipped_to_the_image():
    assert work_area((1000, 1000), Rect(900, -50, 300, 200)) == Rect(900, 0, 100, 150)
    assert work_area((1000, 1000), Rect(2000, 0, 10, 10)).empty


@pytest.mark.parametrize("model, depth, profile, dtype, linear", [
    ("RGBA", "U8", "sRGB-elle-V2-srgbtrc.icc", "uint8", False),
    ("RGBA", "U16", "sRGB-elle-V2-srgbtrc.icc", "uint16", False),
    ("RGBA", "F16", "sRGB-elle-V2-g10.icc", "float16", True),
    ("RGBA", "F32", "scRGB (linear)", "float32", True),
    ("RGBA", "F32", "sRGB-elle-V2-srgbtrc.icc", "float32", False),
])
def test_rgba_documents_travel_in_their_own_depth(model, depth, profile, dtype, linear):
    fmt, problem = document_format(model, depth, profile)
    assert problem == "" and (fmt.dtype, fmt.linear) == (dtype, linear)
    assert fmt.output()["channels"] == "BGRA"


def test_other_documents_get_a_reason_and_a_way_out():
    fmt, problem = document_format("GRAYA", "U8", "")
    assert fmt is None and "greyscale" in problem and "Convert" in problem
    fmt, problem = document_format("CMYKA", "U8", "")
    assert fmt is None and "CMYKA" in problem


def test_previews_are_screen_sized_and_small_pages_are_blended_whole():
    assert preview_size(2480, 3508) == [905, 1280]
    assert preview_size(800, 600) == "page"


@pytest.mark.parametrize("given, snapped", [(100, 96), (768, 768), (10, 64), (9999, 2048), (800, 800)])
def test_max_size_snaps_to_what_the_network_accepts(given, snapped):
    assert snap_max_size(given) == snapped


def test_progress_names_the_stage_and_counts_running_stages_as_half():
    assert progress_text("shade", 2, 6) == "2/6 Shading"
    assert progress_text("shade", 2, 6, cached=True) == "2/6 Shading (reused)"
    # before the backend has timed anything here, no guess: it says so
    assert progress_text("shade", 2, 6, running=True) == "2/6 Shading · estimating…"
    assert progress_text("shade", 2, 6, eta=40.0, running=True) == "2/6 Shading · about 40 s left"
    assert progress_value(2, 6, finished=False) == 25 and progress_value(6, 6, finished=True) == 100


def test_a_time_left_from_the_calibration_alone_reads_roughly_and_one_run_past_says_finishing():
    assert progress_text("rough", 1, 6, eta=40.0, running=True, eta_from="calibration") == \
        "1/6 Rough colours · roughly 40 s left"
    assert progress_text("rough", 1, 6, eta=40.0, running=True, eta_from="measured").endswith("about 40 s left")
    assert progress_text("blend", 6, 6, eta=0.0, running=True, overdue=True) == "6/6 Blending · finishing…"


def test_ratio_and_slider_round_trip():
    assert slider_to_ratio(ratio_to_slider(0.8)) == 0.8
    assert ratio_to_slider(1.7) == 100 and slider_to_ratio(-5) == 0.0


def test_result_layers_never_reuse_an_existing_name():
    assert layer_name(["Background"]) == "inkn'hue colour"
    assert layer_name(["inkn'hue colour", "inkn'hue colour 2"]) == "inkn'hue colour 3"


def test_blend_throttle_keeps_one_in_flight_and_the_latest_ratio_waiting():
    throttle = BlendThrottle()
    assert throttle.request(0.1, final=False) == (0.1, False)
    throttle.sent("a")
    assert throttle.request(0.2, final=False) is None
    assert throttle.request(0.3, final=False) is None
    assert throttle.done() == (0.3, False)
    assert throttle.request(0.4, final=False) == (0.4, False)
    throttle.sent("b")
    throttle.request(0.5, final=True)
    throttle.request(0.6, final=False)  # a later preview must not lose the release's full blend
    assert throttle.done() == (0.6, True)
    assert throttle.done() is None


def test_the_installers_configuration_says_how_to_start_the_backend(isolated_user_dirs):
    path = config.config_path()
    backend, problem = config.load_backend_config()
    assert not backend.installed and "not installed" in problem and str(path) in problem
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": 1, "backend": {"command": ["/opt/inknhue/bin/inknhue", "serve"],
                                                          "weights": "/w", "device": "cuda"}}))
    backend, problem = config.load_backend_config()
    assert problem == "" and backend.serve_command() == [
        "/opt/inknhue/bin/inknhue", "serve", "--weights", "/w", "--device", "cuda"]
    path.write_text("{not json")
    assert "run the inkn'hue installer again" in config.load_backend_config()[1]
    path.write_text(json.dumps({"backend": {"command": "inknhue serve"}}))
    assert "no usable backend command" in config.load_backend_config()[1]


def test_without_pyzmq_the_plugin_says_what_to_do(monkeypatch):
    real_import = builtins.__import__

    def no_zmq(name, *args, **kwargs):
        if name == "zmq":
            raise ImportError("No module named 'zmq'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_zmq)
    module, message = vendor.import_zmq()
    assert module is None
    assert "installer" in message and "python3-zmq" in message and vendor.python_tag() in message


def test_a_vendored_pyzmq_for_this_python_is_put_on_the_path(monkeypatch, tmp_path):
    import sys

    monkeypatch.setattr(vendor, "VENDOR", tmp_path)
    (tmp_path / vendor.python_tag()).mkdir()
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert vendor.add_vendored_path() == tmp_path / vendor.python_tag()
    assert sys.path[0] == str(tmp_path / vendor.python_tag())


@pytest.mark.parametrize("dtype, opaque, clear", [
    ("uint8", b"\x10\x20\x30\xff", b"\x10\x20\x30\xfe"),
    ("uint16", b"\x00\x00" * 3 + b"\xff\xff", b"\x00\x00" * 3 + b"\xfe\xff"),
    ("float16", b"\x00\x00" * 3 + b"\x00\x3c", b"\x00\x00" * 3 + b"\x00\x38"),
    ("float32", b"\x00\x00\x00\x00" * 3 + b"\x00\x00\x80\x3f", b"\x00\x00\x00\x00" * 3 + b"\x00\x00\x00\x3f"),
])
def test_a_layer_is_opaque_only_if_every_pixel_is(dtype, opaque, clear):
    assert fully_opaque(opaque * 50, dtype)
    assert not fully_opaque(opaque * 25 + clear + opaque * 24, dtype)
    assert not fully_opaque(b"", dtype)


def test_a_selection_box_is_worked_at_the_pages_scale_so_it_costs_its_share():
    a4 = (2480, 3508)
    assert box_max_size(256, a4, Rect(800, 1200, 400, 300)) == 64  # 300 * 256/2480 = 31: at least 64
    assert box_max_size(768, a4, Rect(0, 0, 1240, 1754)) == 384     # a quarter page: half the short side
    assert box_max_size(768, a4, Rect(0, 0, 2480, 3000)) == 768     # never finer than asked
    assert box_max_size(768, (600, 700), Rect(0, 0, 300, 200)) == 768  # a small page is worked at its size
