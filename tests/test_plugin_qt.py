"""The docker under each Qt binding Krita uses (PyQt5: Krita 5; PyQt6: Krita 6), offscreen.

Each binding runs in its own process (a process can hold only one Qt); the tests are in
tests/qt_docker/.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.mark.parametrize("binding", ["PyQt5", "PyQt6"])
def test_the_docker_under(binding, tmp_path):
    if importlib.util.find_spec(binding) is None:
        pytest.fail(f"{binding} is not installed (pip install -e '.[test]')")
    env = dict(os.environ, FAKE_KRITA_QT=binding, QT_QPA_PLATFORM="offscreen",
               XDG_RUNTIME_DIR=str(tmp_path), HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE / "qt_docker")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout
