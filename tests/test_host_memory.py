"""The C heap under CPU tensors: a freed page-sized tensor's memory serves the next one
without fresh pages from the kernel (host_memory.py), and goes back to the system when
the pass is over. Each case runs in a fresh process: the heap's settings are per process."""

import subprocess
import sys
import textwrap

import pytest
from parity import case

from inknhue import cli
from inknhue.engine.options import EngineOptions
from inknhue.engine.pipeline import Engine
from inknhue.networks.banded import Banding
from inknhue.rough import RoughRequest, get_provider
from inknhue.runtime import host_memory

pytestmark = pytest.mark.skipif(host_memory._libc is None, reason="glibc's heap (Linux) only")

FEATURE_MB = 64  # the test's feature maps; the VAE's at max size 768 are up to 214 MB


def run_child(body: str) -> dict:
    script = textwrap.dedent("""
        import resource, threading, re
        from pathlib import Path
        import torch
        from inknhue.runtime import host_memory

        def faults():
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

        def rss_mb():
            return int(re.search(r"VmRSS:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) // 1024

        torch.manual_seed(0)
        convs = [torch.nn.Conv2d(64, 64, 3, padding=1) for _ in range(3)]
        norm = torch.nn.GroupNorm(32, 64)

        @torch.inference_mode()
        def network_pass(x):  # ResNet blocks on a 64 MB feature map: each op a fresh tensor
            for conv in convs:
                x = conv(torch.nn.functional.silu(norm(x))) + x
            return x

        x = torch.randn(1, 64, 512, 512)
    """) + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return eval(done.stdout.strip().splitlines()[-1])  # a dict the script printed


def fresh_pages(reuse: bool, in_thread: bool = False, banded_page: bool = False) -> int:
    return run_child(f"""
        if {reuse}:
            assert host_memory.reuse_freed_memory()
            host_memory.available_bytes = lambda: host_memory.REUSE_MIN_AVAILABLE  # room, whatever runs beside
            host_memory.for_page(banded={banded_page})
        result = {{}}
        def work():
            network_pass(x)  # the first pass is faulted in either way
            before = faults()
            network_pass(x)
            result["faults"] = faults() - before
        if {in_thread}:  # as the server's job thread
            thread = threading.Thread(target=work)
            thread.start()
            thread.join()
        else:
            work()
        print(result)
    """)["faults"]


@pytest.mark.parametrize("in_thread", [False, True], ids=["main thread", "worker thread"])
def test_a_second_pass_of_a_network_needs_no_fresh_pages(in_thread):
    pages_per_tensor = FEATURE_MB * 256
    # glibc's default maps every op's output anew: 18 feature maps' worth a pass
    assert fresh_pages(reuse=False, in_thread=in_thread) >= 12 * pages_per_tensor
    # reused: none, or now and then one feature map's worth where the heap's holes shift
    assert fresh_pages(reuse=True, in_thread=in_thread) <= 2 * pages_per_tensor


def test_a_page_large_enough_for_bands_runs_on_glibcs_own_limits():
    """Bands bound the peak: freed blocks of their many sizes are not kept for reuse."""
    pages_per_tensor = FEATURE_MB * 256
    assert fresh_pages(reuse=True, banded_page=True) >= 12 * pages_per_tensor
    assert run_child("""
        host_memory.reuse_freed_memory()
        host_memory.available_bytes = lambda: host_memory.REUSE_MIN_AVAILABLE
        host_memory.for_page(banded=True)
        network_pass(x)
        host_memory.for_page(banded=False)  # the next page is small: reuse again
        network_pass(x)
        before = faults()
        network_pass(x)
        print({"faults": faults() - before})
    """)["faults"] <= 2 * pages_per_tensor


def test_a_machine_short_of_memory_keeps_glibcs_own_limits():
    """The reuse costs up to 1.9 GiB at 768: not taken with less than REUSE_MIN_AVAILABLE free."""
    assert run_child("""
        host_memory.reuse_freed_memory()
        host_memory.available_bytes = lambda: host_memory.REUSE_MIN_AVAILABLE - 1
        host_memory.for_page(banded=False)
        network_pass(x)
        before = faults()
        network_pass(x)
        print({"faults": faults() - before})
    """)["faults"] >= 12 * FEATURE_MB * 256


def test_memory_freed_after_a_pass_goes_back_to_the_system():
    rss = run_child("""
        host_memory.reuse_freed_memory()
        host_memory.available_bytes = lambda: host_memory.REUSE_MIN_AVAILABLE
        host_memory.for_page(banded=False)
        start = rss_mb()
        network_pass(x)
        kept = rss_mb()
        host_memory.give_back_freed_memory()
        print({"kept": kept - start, "after": rss_mb() - start})
    """)
    assert rss["kept"] >= 3 * FEATURE_MB  # held for the next tensors while pages run
    assert rss["after"] < FEATURE_MB


def test_the_commands_that_run_pages_set_the_heap_up_before_anything_else(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(host_memory, "reuse_freed_memory", lambda: calls.append("heap"))
    monkeypatch.setattr(cli, "cmd_colorize", lambda args: calls.append("colorize") or 0)
    monkeypatch.setattr(cli, "cmd_doctor", lambda args: calls.append("doctor") or 0)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    cli.main(["colorize", str(tmp_path / "page.png"), "-o", str(tmp_path / "out.png")])
    cli.main(["doctor"])
    assert calls == ["heap", "colorize", "doctor"]


def test_the_engine_tells_the_heap_whether_each_page_runs_in_bands(parity_weights, monkeypatch):
    seen = []
    monkeypatch.setattr(host_memory, "for_page", lambda banded: seen.append(banded))
    page = case("page_rgb_uint8")
    request = RoughRequest(page=page, rough=case("app_rough_uint8"))
    for enabled in (False, True):
        engine = Engine(parity_weights, "cpu", EngineOptions("reference", banding=Banding(enabled=enabled)))
        engine.colorize(page, get_provider("image"), request, max_size=64)
    assert seen == [False, True]
