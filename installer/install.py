"""inkn'hue for Krita: the one-command installer.

    python3 installer/install.py [--device auto|cuda|cpu|mps] [--weights-from DIR] [--no-weights]
                                 [--krita-dir PATH] [--uninstall]

Runs with any Python 3.10 or newer and nothing else installed: it creates a virtual
environment in the user data dir, installs the backend there, and hands over to
`inknhue install` inside it (torch for this machine, the weights, the Krita plugin, pyzmq
for Krita's Python, the plugin's configuration). Safe to run again: it resumes an
interrupted run and changes nothing when everything is in place. `--uninstall` removes
what it installed, the environment included.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plugin"))
from inknhue_krita.paths import user_data_dir  # noqa: E402  (standard library only)

STAMP = "inknhue-source.sha256"


def fail(message: str) -> None:
    print(f"install: error: {message}", file=sys.stderr)
    sys.exit(1)


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def run(*command, check=True) -> int:
    done = subprocess.run([str(c) for c in command])
    if check and done.returncode:
        fail(f"{Path(str(command[0])).name} {' '.join(map(str, command[1:4]))}... failed (exit {done.returncode}); "
             f"fix the cause above and run the installer again: it resumes")
    return done.returncode


def works(python: Path) -> bool:
    return python.exists() and subprocess.run([str(python), "-c", "import sys"], capture_output=True).returncode == 0


def make_venv(venv: Path, reuse: list[Path]) -> Path:
    python = venv_python(venv)
    if not works(python):
        if venv.exists():
            print(f"venv: {venv} is broken; making it again")
            shutil.rmtree(venv)
        print(f"venv: creating {venv}")
        run(sys.executable, "-m", "venv", venv)
    if reuse:
        site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
        pth = Path(site) / "inknhue-reuse.pth"
        text = "".join(f"{folder}\n" for folder in reuse)
        if not pth.exists() or pth.read_text() != text:
            pth.write_text(text)
            print(f"venv: reusing packages from {', '.join(map(str, reuse))}")
    return python


def source_digest() -> str:
    h = hashlib.sha256()
    for folder in ("backend", "plugin"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            h.update(str(path.relative_to(ROOT)).encode())
            h.update(path.read_bytes())
    h.update((ROOT / "pyproject.toml").read_bytes())
    return h.hexdigest()


def install_backend(venv: Path, python: Path) -> None:
    stamp, digest = venv / STAMP, source_digest()
    if stamp.exists() and stamp.read_text() == digest:
        print("backend: up to date")
        return
    print(f"backend: installing from {ROOT}")
    # its dependencies come next, from `inknhue install`, once torch is chosen for this machine
    run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", ROOT)
    stamp.write_text(digest)


def main() -> None:
    if sys.version_info < (3, 10):
        fail(f"Python 3.10 or newer is needed, this is {sys.version.split()[0]}")
    parser = argparse.ArgumentParser(description="Install inkn'hue for Krita (run again to repair or upgrade).")
    parser.add_argument("--venv", type=Path, default=user_data_dir() / "venv",
                        help="where the backend's virtual environment goes (default: the user data dir)")
    parser.add_argument("--reuse-packages", type=Path, action="append", default=[], metavar="DIR",
                        help="make the packages installed in DIR (a site-packages folder) visible in the venv, "
                             "e.g. torch already installed on an offline machine")
    parser.add_argument("--uninstall", action="store_true", help="remove everything the installer put in place")
    args, rest = parser.parse_known_args()
    venv = args.venv.expanduser().resolve()
    inknhue = venv / ("Scripts/inknhue.exe" if os.name == "nt" else "bin/inknhue")

    if args.uninstall:
        if inknhue.exists():
            run(inknhue, "install", "--uninstall", check=False)
        if venv.exists():
            shutil.rmtree(venv)
            print(f"venv: removed {venv}")
        for folder in (venv.parent,):
            try:
                folder.rmdir()
            except OSError:
                pass
        return

    python = make_venv(venv, [p.resolve() for p in args.reuse_packages])
    install_backend(venv, python)
    sys.exit(run(inknhue, "install", "--source", ROOT, *rest, check=False))


if __name__ == "__main__":
    main()
