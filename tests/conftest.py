import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from parity import write_released_layout  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path, monkeypatch):
    """Logs, data and config go to a throwaway HOME, never the developer's own."""
    home = tmp_path / "home"
    for var, sub in (("HOME", ""), ("XDG_DATA_HOME", ".local/share"), ("XDG_CONFIG_HOME", ".config"),
                     ("XDG_CACHE_HOME", ".cache"), ("XDG_STATE_HOME", ".local/state")):
        (home / sub).mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(var, str(home / sub))
    monkeypatch.delenv("INKNHUE_WEIGHTS", raising=False)
    return home


@pytest.fixture(scope="session")
def parity_weights(tmp_path_factory) -> Path:
    """The parity weights in the released file layout (build once, never modify)."""
    return write_released_layout(tmp_path_factory.mktemp("parity-weights"))


@pytest.fixture
def weights_copy(parity_weights, tmp_path) -> Path:
    """A private copy of the parity weights that a test may damage."""
    import shutil

    return Path(shutil.copytree(parity_weights, tmp_path / "weights"))


INKNHUE = Path(sys.executable).parent / ("inknhue.exe" if os.name == "nt" else "inknhue")


def run_cli(*args, env=None, timeout=300):
    """Run the installed `inknhue` console script as a user would."""
    assert INKNHUE.exists(), f"the console script is not installed: {INKNHUE} (pip install -e .)"
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([str(INKNHUE), *map(str, args)], capture_output=True,
                          text=True, env=full_env, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli
