"""`inknhue doctor`: one screen that says what works, what does not, and the fix for each."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from inknhue_krita.paths import user_data_dir

from .. import weights
from .installer import KRITA_PYTHONS, KRITARC_KEY, MANIFEST, PLUGIN, Manifest, krita_places


def install_command() -> str:
    """The installer command to run again: as the last install recorded it (installer/install.py
    with its options), else this venv's `inknhue install`, by full path."""
    recorded = Manifest(user_data_dir() / MANIFEST).info.get("rerun")
    return recorded or f"{weights.inknhue_command()} install"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_krita(krita_dir: Path | None) -> list[Check]:
    places = krita_places(krita_dir)
    binary = shutil.which("krita")
    version = ""
    if binary:
        try:
            out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
            version = next((line for line in out.splitlines() if "krita" in line.lower()), "").strip()
        except (OSError, subprocess.SubprocessError):
            pass
    found = binary or places.resources.is_dir()
    checks = [Check("Krita", bool(found),
                    f"{version or binary or 'resources at ' + str(places.resources)} ({places.kind})",
                    "install Krita 5 or 6, or give --krita-dir")]
    pykrita = places.resources / "pykrita"
    manifest = Manifest(user_data_dir() / MANIFEST)
    ours = [Path(p) for p in manifest.files if p.startswith(str(pykrita))]
    intact = bool(ours) and all(Path(p).is_file() for p in ours)
    checks.append(Check("plugin installed", (pykrita / PLUGIN / "__init__.py").is_file() and intact,
                        str(pykrita / PLUGIN), f"run `{install_command()}` (it repairs missing files)"))
    rc = places.kritarc.read_text(encoding="utf-8") if places.kritarc.is_file() else ""
    enabled = re.search(rf"^\[python\][^\[]*^{KRITARC_KEY}=true\s*$", rc, re.M | re.S) is not None
    checks.append(Check("plugin enabled", enabled, str(places.kritarc),
                        f"run `{install_command()}`, or enable inkn'hue in Settings > Configure Krita > "
                        f"Python Plugins"))
    checks.append(check_pyzmq(pykrita / PLUGIN / "vendor"))
    return checks


def krita_python() -> str | None:
    """The system Python a distribution's Krita embeds (found from the libpython it links)."""
    binary = shutil.which("krita")
    if not binary or not shutil.which("ldd"):
        return None
    libraries = [binary] + [str(p) for p in Path("/usr/lib").glob("*/kritaplugins/kritapykrita.so")]
    for library in libraries:
        try:
            out = subprocess.run(["ldd", library], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        match = re.search(r"libpython(3\.\d+)\S* => (\S+)", out)
        if match:
            # the interpreter installed beside that libpython (e.g. /usr/bin for /usr/lib/...)
            prefix = Path(match.group(2)).resolve().parents[1 if "-linux-" not in match.group(2) else 2]
            for candidate in (prefix / "bin" / f"python{match.group(1)}", Path(f"/usr/bin/python{match.group(1)}")):
                if candidate.exists():
                    return str(candidate)
    return None


def check_pyzmq(vendor: Path) -> Check:
    python = krita_python()
    if python:
        probe = (f"import sys; sys.path.insert(0, {str(vendor)!r} + '/cp%d%d' % sys.version_info[:2]); "
                 f"import zmq; print(zmq.__version__, zmq.__file__)")
        done = subprocess.run([python, "-c", probe], capture_output=True, text=True)
        if done.returncode == 0:
            version, where = done.stdout.split()
            source = "vendored" if str(vendor) in where else "system"
            return Check("pyzmq for Krita's Python", True, f"{version} ({source}) with {python}")
        return Check("pyzmq for Krita's Python", False, f"{python} cannot import zmq",
                     f"run `{install_command()}` (vendors pyzmq), or install python3-zmq")
    tags = sorted(p.name for p in vendor.glob("cp3*") if (p / "zmq").is_dir())
    ok = set(KRITA_PYTHONS) <= set(tags)
    return Check("pyzmq for Krita's Python", ok, f"vendored for {', '.join(tags) or 'none'}",
                 f"run `{install_command()}` with internet access (or add --wheels-from DIR)")


def check_backend(weights_dir: Path) -> list[Check]:
    checks = [Check("backend venv", True, f"{sys.prefix} (Python {sys.version.split()[0]})")]
    try:
        import torch

        from ..runtime.devices import describe, pick_device

        device = describe(pick_device("auto"))
        memory = f", {device['memory_bytes'] / 2**30:.0f} GiB" if device["memory_bytes"] else ""
        checks.append(Check("torch and device", True, f"torch {torch.__version__}: {device['name']}{memory}"))
    except Exception as exc:
        checks.append(Check("torch and device", False, str(exc), f"run `{install_command()}` again"))
    missing = weights.missing_files(weights_dir)
    if missing:
        checks.append(Check("weights", False, f"{weights_dir}: missing {', '.join(missing)}",
                            f"run `{install_command()}` again when {weights.HF_REPO} on huggingface.co can be "
                            f"reached (it resumes the download), or download its files elsewhere into a folder "
                            f"DIR and add --weights-from DIR"))
    else:
        try:
            from ..weights.checkpoints import load_alignment_vae, load_shading_generator

            load_shading_generator(weights_dir)
            load_alignment_vae(weights_dir)
            origin = {"own": "; your own weights (--own-weights), not the released files",
                      "unchecked": "; not checked against the released files (the hub did not answer when "
                                   "they were copied)"}.get(Manifest(user_data_dir() / MANIFEST).info.get(
                                       "weights_origin"), "")
            checks.append(Check("weights", True, f"{weights_dir}: present, every network loads strictly{origin}"))
        except Exception as exc:
            checks.append(Check("weights", False, str(exc), f"run `{weights.inknhue_command()} weights download`"))
    checks.append(check_serve(weights_dir))
    return checks


def check_serve(weights_dir: Path) -> Check:
    """Start a backend on a free port and ask it `hello`."""
    from inknhue_krita.client import Client, ServerError

    with tempfile.TemporaryDirectory() as tmp:
        connection = Path(tmp) / "server.json"
        process = subprocess.Popen([sys.executable, "-m", "inknhue", "serve", "--port", "0", "--weights",
                                    str(weights_dir), "--connection-file", str(connection)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not connection.exists() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            if not connection.exists():
                error = process.stderr.read() if process.poll() is not None else "no answer in 60 s"
                return Check("backend answers", False, error.strip()[-300:], "see the server log")
            with Client("auto", connection_file=connection, timeout=10) as client:
                hello = client.hello()
                client.shutdown()
            return Check("backend answers", True, f"hello from {hello['device']['name']}, "
                                                  f"providers {', '.join(p['name'] for p in hello['providers'])}")
        except ServerError as exc:
            return Check("backend answers", False, exc.message, "see the server log")
        finally:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


def run(krita_dir: Path | None = None, weights_dir: Path | None = None) -> int:
    checks = check_krita(krita_dir) + check_backend(weights_dir or weights.resolve_weights_dir())
    width = max(len(c.name) for c in checks)
    for check in checks:
        print(f"{'ok ' if check.ok else 'BAD'}  {check.name:<{width}}  {check.detail}")
        if not check.ok and check.fix:
            print(f"     {'':<{width}}  fix: {check.fix}")
    bad = [c for c in checks if not c.ok]
    print("everything works" if not bad else f"{len(bad)} problem(s)")
    return 0 if not bad else 1
