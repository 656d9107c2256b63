"""The plugin's release zip, as Krita's "Import Python Plugin from File" takes it."""

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parent.parent


def build(out: Path) -> Path:
    done = subprocess.run([sys.executable, str(ROOT / "installer/build_plugin_zip.py"), "--out", str(out)],
                          capture_output=True, text=True, check=True)
    return Path(done.stdout.strip())


def test_the_zip_holds_the_desktop_file_and_the_plugin_folder(tmp_path):
    archive = build(tmp_path)
    assert archive.name == "inknhue_krita-0.1.0.zip"
    names = zipfile.ZipFile(archive).namelist()
    assert "inknhue_krita.desktop" in names
    assert {"inknhue_krita/__init__.py", "inknhue_krita/docker.py", "inknhue_krita/protocol.py",
            "inknhue_krita/manual.html"} <= set(names)
    assert all(n == "inknhue_krita.desktop" or n.startswith("inknhue_krita/") for n in names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    desktop = configparser.ConfigParser(interpolation=None)
    desktop.read_string(zipfile.ZipFile(archive).read("inknhue_krita.desktop").decode())
    entry = desktop["Desktop Entry"]
    assert entry["ServiceTypes"] == "Krita/PythonPlugin" and entry["X-KDE-Library"] == "inknhue_krita"


def test_the_same_sources_give_the_same_zip(tmp_path):
    first = build(tmp_path / "a").read_bytes()
    assert build(tmp_path / "b").read_bytes() == first


def test_the_plugin_never_imports_torch_or_numpy():
    """Krita's Python has neither: only Qt, pyzmq and the standard library."""
    for path in (ROOT / "plugin/inknhue_krita").glob("*.py"):
        text = path.read_text()
        for module in ("torch", "numpy", "PIL", "cv2", "platformdirs", "inknhue."):
            assert f"import {module}" not in text and f"from {module}" not in text, (path.name, module)
