"""`--cluster HOST:PORT` joins a cluster started by `ray start --head`, as a studio's is."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_ray_cluster import NAMES, args_for, book  # noqa: F401  (the module's pages)

pytest.importorskip("ray")
RAY = Path(sys.executable).parent / "ray"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def head(tmp_path, monkeypatch):
    # a Ray started in this process sets its auth mode here; `ray start` and the driver choose
    # theirs as a user's shell would (the head makes a token in this test's HOME, the driver
    # finds it there)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    port = free_port()
    started = subprocess.run([str(RAY), "start", "--head", "--port", str(port), "--num-cpus", "1",
                              "--include-dashboard=false", "--disable-usage-stats"],
                             capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        yield port
    finally:
        subprocess.run([str(RAY), "stop", "--force"], capture_output=True, timeout=120)


def test_a_chapter_joins_a_running_cluster_by_its_address(head, book, parity_weights, tmp_path, cli):  # noqa: F811
    host = socket.gethostbyname(socket.gethostname())
    done = cli(*args_for(book, parity_weights, tmp_path / "out", "--cluster", f"{host}:{head}",
                             "--actor-cpus", 1), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cluster: 1 actor, 1 CPUs each" in done.stderr
    assert sorted(path.stem for path in (tmp_path / "out").glob("*.png")) == sorted(NAMES)
