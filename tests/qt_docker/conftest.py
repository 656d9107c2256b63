"""The docker under a Qt binding: run by tests/test_plugin_qt.py in a subprocess per binding
(PyQt5 for Krita 5, PyQt6 for Krita 6), never in the main test process (one Qt a process)."""

import os
import sys
from pathlib import Path

HERE = Path(__file__).parent
if not os.environ.get("FAKE_KRITA_QT"):
    collect_ignore_glob = ["*.py"]
else:
    sys.path.insert(0, str(HERE.parent / "fakekrita"))
    sys.path.insert(0, str(HERE.parent))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    import pytest

    @pytest.fixture(autouse=True)
    def isolated_user_dirs():
        """Overrides the suite's per-test dirs: the backend and its files live for the whole run
        (the parent test gives this process a throwaway HOME)."""
        return None
