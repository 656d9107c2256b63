"""Build the Krita plugin's release zip: `python installer/build_plugin_zip.py [--out DIR]`.

The zip holds `inknhue_krita.desktop` and the `inknhue_krita/` folder at its top level,
as Krita's Tools > Scripts > Import Python Plugin from File expects. pyzmq is not in it:
the installer puts the wheel for Krita's Python in `inknhue_krita/vendor/<tag>/`.
"""

from __future__ import annotations

import argparse
import re
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "plugin"
SKIP = {"__pycache__", "vendor"}


def version() -> str:
    text = (PLUGIN / "inknhue_krita" / "__init__.py").read_text()
    return re.search(r'__version__ = "([^"]+)"', text).group(1)


MANUAL = ROOT / "resources" / "manual.html"


def plugin_files():
    """(path in the zip, file) pairs."""
    yield "inknhue_krita.desktop", PLUGIN / "inknhue_krita.desktop"
    for path in sorted((PLUGIN / "inknhue_krita").rglob("*")):
        if path.is_file() and not SKIP & set(path.relative_to(PLUGIN).parts) and path.suffix != ".pyc":
            yield str(path.relative_to(PLUGIN)), path
    yield "inknhue_krita/manual.html", MANUAL  # shown by Krita's Python Plugin Manager


def build(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"inknhue_krita-{version()}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, path in plugin_files():
            # fixed timestamps: the same sources give the same zip
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default dist/)")
    print(build(parser.parse_args().out))


if __name__ == "__main__":
    main()
