"""inkn'hue for Krita: the one-command installer.

    python3 installer/install.py [options]        (--help lists them all)

Runs with any Python 3.10 or newer and nothing else installed: it creates a virtual
environment in the user data dir, installs the backend there, and hands over to
`inknhue install` inside it (torch for this machine, the weights, the Krita plugin, pyzmq
for Krita's Python, the plugin's configuration). Safe to run again: it resumes an
interrupted run and changes nothing when everything is in place. `--uninstall` removes
what it installed, the environment included.

The options of `inknhue install` are defined once, in `inknhue.install.installer.OPTIONS`, and
offered here too (the backend's installer module is standard library only).
"""

from __future__ import annotations

import sys

if sys.version_info < (3, 10):
    sys.exit(f"install: error: Python 3.10 or newer is needed, this is {sys.version.split()[0]}")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "backend"), str(ROOT / "plugin")]
from inknhue.install import installer  # noqa: E402  (standard library only)
from inknhue_krita.paths import user_data_dir  # noqa: E402  (standard library only)

STAMP = "inknhue-source.sha256"
EPILOG = (f"Exit status: 0 when everything is in place; {installer.INCOMPLETE} when everything but the weights "
          f"is (the last line says how to get them); 1 on an error (the last line says why).")


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
    # its dependencies come next, from `inknhue install`, once torch is chosen for this machine;
    # no cache: a wheel built from this folder is of no use later, and would outlive --uninstall
    cause = installer.pip_install("--quiet", "--no-cache-dir", "--no-deps", str(ROOT), python=str(python))
    if cause:
        fail(f"the backend could not be installed into {venv}: {cause}; fix that (network? proxy? disk space?) "
             f"and run the installer again: it resumes")
    stamp.write_text(digest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="install.py", epilog=EPILOG,
        description="Install inkn'hue for Krita: a venv with the backend and torch for this machine, the weights, "
                    "the Krita plugin (run again to repair or upgrade; it resumes an interrupted run).")
    parser.add_argument("--venv", type=Path, default=user_data_dir() / "venv", metavar="DIR",
                        help="where the backend's virtual environment goes (default: %(default)s)")
    parser.add_argument("--reuse-packages", type=Path, action="append", default=[], metavar="DIR",
                        help="make the packages installed in DIR (a site-packages folder) visible in the venv, "
                             "e.g. torch already installed on an offline machine (may be given more than once)")
    installer.add_options(parser)
    parser.add_argument("--uninstall", action="store_true",
                        help="remove everything the installer put in place, the venv included")
    return parser


def main() -> None:
    args = build_parser().parse_args()
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

    reuse = [p.expanduser().resolve() for p in args.reuse_packages]
    forwarded = installer.options_argv(args)
    own = ([] if venv == (user_data_dir() / "venv").resolve() else ["--venv", str(venv)])
    for folder in reuse:
        own += ["--reuse-packages", str(folder)]
    rerun = installer.command_line([sys.executable, str(Path(__file__).resolve()), *own, *forwarded])

    python = make_venv(venv, reuse)
    install_backend(venv, python)
    sys.exit(run(inknhue, "install", "--source", ROOT, "--rerun-command", rerun, *forwarded, check=False))


if __name__ == "__main__":
    main()
