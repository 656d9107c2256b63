"""Chapters on Ray (`--cluster`): a real local Ray on the CPU, two actors, small pages.

Named to sort after test_host_memory.py: a Ray started in the pytest process (its threads)
skews that file's worker-thread heap count."""

import io
import logging
import os
import signal
import socket
import time

import numpy as np
import pytest
import torch
from drawing import Page
from PIL import Image

from inknhue import cli
from inknhue.batch import chapter, cluster

ray = pytest.importorskip("ray")

NAMES = [f"p{i}" for i in range(1, 7)]


@pytest.fixture(scope="module")
def local_ray():
    """One Ray for the module (its start-up is the slow part): two CPUs, two actors of one."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    folder = tmp_path_factory.mktemp("book")
    (folder / "pages").mkdir()
    (folder / "hints").mkdir()
    for i, name in enumerate(NAMES):
        width, height = 96 + 8 * i, 128
        page = Page(width, height).rectangle(8, 8, width - 8, height - 8).circle(width // 2, height // 2, 22)
        page.stroke([(width // 2 - 8, height // 2), (width // 2 + 8, height // 2)], (60 + 30 * i, 40, 200 - 20 * i))
        Image.fromarray(page.grey).save(folder / "pages" / f"{name}.png")
        Image.fromarray(page.hints, "RGBA").save(folder / "hints" / f"{name}.png")
    return folder


def args_for(book, parity_weights, out, *extra):
    return ["colorize", str(book / "pages"), "--hints", str(book / "hints"), "-o", str(out),
            "--weights", str(parity_weights), "--device", "cpu", "--max-size", "64", "--precision", "reference",
            *map(str, extra)]


@pytest.fixture(scope="module")
def local_results(book, parity_weights, tmp_path_factory):
    """The local loop's chapter, with one thread as each actor has (torch's CPU sums depend
    on the thread count, so equal bytes need equal threads)."""
    out = tmp_path_factory.mktemp("local")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert cli.main(args_for(book, parity_weights, out)) == 0
    finally:
        torch.set_num_threads(threads)
    return {name: (out / f"{name}.png").read_bytes() for name in NAMES}


def on_cluster(book, parity_weights, out, *extra) -> int:
    return cli.main(args_for(book, parity_weights, out, "--cluster", "ray", "--actors", 2, "--actor-cpus", 1, *extra))


def outputs(out):
    return {path.stem: path.read_bytes() for path in out.glob("*.png")}


def test_a_chapter_on_two_actors_gives_the_local_loops_files_byte_for_byte(local_ray, book, parity_weights,
                                                                          local_results, tmp_path, capsys):
    assert on_cluster(book, parity_weights, tmp_path / "out") == 0
    assert outputs(tmp_path / "out") == local_results
    err = capsys.readouterr().err
    assert "cluster: 2 actors, 1 CPUs each" in err
    assert "actor 0 ready" in err and "actor 1 ready" in err
    assert err.count("loaded the models") == 2  # once per actor, not per page
    manifest = chapter.Manifest(tmp_path / "out")
    assert sorted(manifest.entries) == sorted(f"{name}.png" for name in NAMES)


def test_an_actor_killed_mid_chapter_is_restarted_and_its_page_retried_on_another(
        local_ray, book, parity_weights, local_results, tmp_path, monkeypatch, capsys):
    killed = []
    dispatch = cluster._Loop._dispatch

    def kill_under_p3(self, queue, pending, actors, reference):
        dispatch(self, queue, pending, actors, reference)
        for actor, job in pending.values():  # p3 running (first in its actor's line), not waiting
            if job.page.name == "p3" and actor.order[0] is job and not killed:
                killed.append(actor.index)
                os.kill(actor.pid, signal.SIGKILL)  # a real crash, while it holds p3

    monkeypatch.setattr(cluster._Loop, "_dispatch", kill_under_p3)
    assert on_cluster(book, parity_weights, tmp_path / "out") == 0
    assert killed
    assert outputs(tmp_path / "out") == local_results
    err = capsys.readouterr().err
    assert f"actor {killed[0]} on" in err and "died under p3" in err and "trying the page on another actor" in err


def test_a_page_whose_actor_dies_on_every_try_is_reported_and_the_chapter_goes_on(
        local_ray, book, parity_weights, local_results, tmp_path, monkeypatch, capsys):
    dispatch = cluster._Loop._dispatch
    killed = set()

    def kill_whoever_takes_p3(self, queue, pending, actors, reference):
        dispatch(self, queue, pending, actors, reference)
        for ref, (actor, job) in pending.items():
            if job.page.name == "p3" and actor.order[0] is job and ref not in killed:
                killed.add(ref)
                os.kill(actor.pid, signal.SIGKILL)

    monkeypatch.setattr(cluster._Loop, "_dispatch", kill_whoever_takes_p3)
    assert on_cluster(book, parity_weights, tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "failed p3: its actor died on 2 tries" in err  # both actors, one each
    assert "5 done, 0 skipped, 1 failed" in err
    assert outputs(tmp_path / "out") == {n: data for n, data in local_results.items() if n != "p3"}


def test_an_interrupted_driver_leaves_the_manifest_true_and_the_same_command_goes_on(
        local_ray, book, parity_weights, local_results, tmp_path, monkeypatch, capsys):
    keep = chapter.keep
    kept = []

    def keep_then_ctrl_c(plan, page, final, held):
        keep(plan, page, final, held)
        kept.append(page.name)
        if len(kept) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(chapter, "keep", keep_then_ctrl_c)
    assert on_cluster(book, parity_weights, tmp_path / "out") == 130
    assert "run the same command again to go on" in capsys.readouterr().err
    assert sorted(outputs(tmp_path / "out")) == sorted(kept)
    assert sorted(chapter.Manifest(tmp_path / "out").entries) == sorted(f"{name}.png" for name in kept)
    monkeypatch.setattr(chapter, "keep", keep)
    assert on_cluster(book, parity_weights, tmp_path / "out") == 0
    err = capsys.readouterr().err
    assert f"{len(NAMES) - 2} to colorize" in err and err.count("skipped") >= 2
    assert outputs(tmp_path / "out") == local_results


def test_a_page_damaged_behind_its_header_fails_alone(local_ray, book, parity_weights, tmp_path, capsys):
    pages = tmp_path / "pages"
    pages.mkdir()
    for name in NAMES:
        data = (book / "pages" / f"{name}.png").read_bytes()
        (pages / f"{name}.png").write_bytes(data[:len(data) // 2] if name == "p4" else data)
    code = cli.main(["colorize", str(pages), "--hints", str(book / "hints"), "-o", str(tmp_path / "out"),
                     "--weights", str(parity_weights), "--device", "cpu", "--max-size", "64",
                     "--cluster", "ray", "--actors", "2", "--actor-cpus", "1"])
    assert code == 1
    err = capsys.readouterr().err
    assert "failed p4:" in err and "Traceback" not in err
    assert "5 done, 0 skipped, 1 failed" in err
    assert sorted(outputs(tmp_path / "out")) == [n for n in NAMES if n != "p4"]


def test_a_node_without_the_weights_is_named_with_the_fix(local_ray, book, tmp_path, capsys):
    code = cli.main(["colorize", str(book / "pages"), "--hints", str(book / "hints"), "-o", str(tmp_path / "out"),
                     "--weights", str(tmp_path / "none"), "--device", "cpu",
                     "--cluster", "ray", "--actors", "2", "--actor-cpus", "1"])
    assert code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("inknhue: error: node ") and "cannot load the weights" in last
    assert "inknhue weights download" in last and "--weights" in last
    assert not list((tmp_path / "out").glob("*.png"))


def test_cuda_on_a_cluster_without_gpus_is_refused_before_any_page(local_ray, book, parity_weights, tmp_path,
                                                                   capsys):
    argv = args_for(book, parity_weights, tmp_path / "out", "--cluster", "ray")
    argv[argv.index("--device") + 1] = "cuda"
    assert cli.main(argv) == 1
    assert "the Ray cluster has no GPU" in capsys.readouterr().err


def test_a_second_driver_on_the_same_folder_refuses(local_ray, book, parity_weights, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    lock = chapter.Manifest.lock(tmp_path / "out")
    lock.acquire()  # the first driver, still running
    try:
        assert on_cluster(book, parity_weights, tmp_path / "out") == 1
    finally:
        lock.release()
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("inknhue: error:") and f"pid {os.getpid()}" in last
    assert not list((tmp_path / "out").glob("*.png"))


# The addresses are tried by the command itself, as a user runs it (this process holds a Ray).

@pytest.fixture
def run_cli(cli):
    """The installed `inknhue` console script (conftest's `cli` fixture)."""
    return cli


def test_an_address_that_takes_the_connection_and_says_nothing_is_an_error_within_seconds(
        book, parity_weights, tmp_path, run_cli):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    address = f"127.0.0.1:{silent.getsockname()[1]}"
    started = time.monotonic()
    try:
        done = run_cli(*args_for(book, parity_weights, tmp_path / "out", "--cluster", address)[0:], timeout=60)
    finally:
        silent.close()
    assert time.monotonic() - started < 30
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"the Ray cluster at {address} does not answer (no answer within 10 s)" in done.stderr


def test_a_closed_port_is_named(book, parity_weights, tmp_path, run_cli):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    done = run_cli(*args_for(book, parity_weights, tmp_path / "out", "--cluster", f"ray://127.0.0.1:{port}"))
    assert done.returncode == 1
    assert f"the Ray cluster at ray://127.0.0.1:{port} does not answer" in done.stderr.strip().splitlines()[-1]


def test_without_ray_the_option_says_how_to_get_it(book, parity_weights, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "ray", None)
    assert cli.main(args_for(book, parity_weights, tmp_path / "out", "--cluster", "ray")) == 1
    assert "pip install 'inknhue[cluster]'" in capsys.readouterr().err


def test_the_comparisons_above_compare_colorized_pages(local_results):
    for data in local_results.values():
        pixels = np.asarray(Image.open(io.BytesIO(data))).astype(np.int16)
        assert pixels.std() > 5 and np.abs(pixels[..., 0] - pixels[..., 2]).max() > 20  # colour, not grey
