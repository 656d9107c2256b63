"""`inknhue install`: from the backend's venv to a working docker in Krita.

Standard library only until torch and the dependencies are in place (the bootstrap,
installer/install.py, installs this package without its dependencies). Every step is
idempotent: files are written only when their content differs, so a second run changes
nothing, and an interrupted run simply resumes. Everything written is recorded in
`install-manifest.json`, so `--uninstall` removes exactly that and an upgrade replaces
only it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import zipfile
from dataclasses import dataclass
from pathlib import Path

from inknhue_krita.paths import user_data_dir

from .. import weights
from ..errors import InknhueError

MANIFEST = "install-manifest.json"
PLUGIN = "inknhue_krita"
KRITA_PYTHONS = ("cp310", "cp311", "cp312", "cp313")
#: NVIDIA driver (major version) -> the newest CUDA build of torch it runs, newest first
CUDA_BUILDS = ((570, "cu128"), (560, "cu126"), (550, "cu124"), (525, "cu121"))
#: the PyTorch wheel index; the build tag (cpu, cu128...) is appended
TORCH_INDEX = "https://download.pytorch.org/whl"
#: `inknhue install` exits with this when everything but the weights is in place
INCOMPLETE = 3


def say(message: str) -> None:
    print(message, flush=True)


# --- the record of what was installed -----------------------------------------------------

class Manifest:
    """Files and directories this installer made, and settings it changed."""

    def __init__(self, path: Path):
        self.path = path
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        self.files: dict[str, str] = data.get("files", {})      # path -> sha256
        self.dirs: list[str] = data.get("dirs", [])
        self.settings: dict[str, dict] = data.get("settings", {})
        self.info: dict = data.get("info", {})

    def save(self) -> None:
        text = json.dumps({"files": self.files, "dirs": self.dirs, "settings": self.settings,
                           "info": self.info}, indent=2, sort_keys=True)
        if self.path.exists() and self.path.read_text() == text:
            return  # unchanged: a second run touches nothing
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)

    def make_dir(self, folder: Path) -> None:
        missing = []
        for parent in [folder, *folder.parents]:
            if parent.exists():
                break
            missing.append(parent)
        for created in reversed(missing):
            created.mkdir()
            self.dirs.append(str(created))

    def write(self, target: Path, data: bytes) -> bool:
        """Write if the content differs; returns True if anything changed."""
        digest = hashlib.sha256(data).hexdigest()
        if target.is_file() and target.read_bytes() == data:
            self.files[str(target)] = digest
            return False
        self.make_dir(target.parent)
        tmp = target.with_name(f".{target.name}.part")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        self.files[str(target)] = digest
        return True

    def copy(self, source: Path, target: Path) -> bool:
        """Copy a (large) file if it differs, streaming; returns True if it changed."""
        digest = _sha256(source)  # hashed once: these are the large files
        if target.is_file() and target.stat().st_size == source.stat().st_size and _sha256(target) == digest:
            self.files[str(target)] = digest
            return False
        self.make_dir(target.parent)
        tmp = target.with_name(f".{target.name}.part")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
        self.files[str(target)] = digest
        return True

    def forget_missing_under(self, folder: Path, keep: set[str]) -> int:
        """Remove files this installer once wrote under `folder` that are no longer part of it."""
        removed = 0
        for name in list(self.files):
            if name.startswith(str(folder) + os.sep) and name not in keep:
                Path(name).unlink(missing_ok=True)
                del self.files[name]
                removed += 1
        return removed


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# --- torch ------------------------------------------------------------------------------

@dataclass
class TorchChoice:
    device: str       #: cuda, mps or cpu
    index: str | None  #: a pip index URL, or None for PyPI's default build
    why: str


def nvidia_driver() -> int | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout
        return int(out.strip().splitlines()[0].split(".")[0])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def choose_torch(device: str = "auto", torch_index: str = TORCH_INDEX) -> TorchChoice:
    system, machine = platform.system(), platform.machine().lower()
    base = torch_index.rstrip("/")
    if device in ("auto", "mps") and system == "Darwin" and machine in ("arm64", "aarch64"):
        return TorchChoice("mps", None, "an Apple Silicon Mac: PyPI's torch uses its GPU through MPS")
    if device == "mps":
        raise InknhueError("--device mps needs an Apple Silicon Mac")
    driver = nvidia_driver() if device in ("auto", "cuda") else None
    if driver is not None:
        for minimum, tag in CUDA_BUILDS:
            if driver >= minimum:
                return TorchChoice("cuda", f"{base}/{tag}",
                                   f"an NVIDIA driver {driver} is installed: the {tag} build runs on it")
        if device == "cuda":
            raise InknhueError(f"the NVIDIA driver {driver} is too old for a current torch (525 or newer needed)")
    elif device == "cuda":
        raise InknhueError("--device cuda: no NVIDIA driver found (nvidia-smi did not answer)")
    why = "no NVIDIA GPU found" if device == "auto" else "--device cpu"
    index = f"{base}/cpu" if system == "Linux" else None
    return TorchChoice("cpu", index, f"{why}: the CPU build" + (", smaller than PyPI's (which bundles CUDA)"
                                                                 if index else ""))


_TORCH_PROBE = ("import torch, json; print(json.dumps([torch.__version__, torch.version.cuda, "
                "torch.cuda.is_available(), "
                "bool(getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available())]))")


def torch_build() -> tuple[str, str | None, bool, bool] | None:
    """(version, the CUDA version it was built for or None, CUDA usable, MPS usable) of the
    torch this Python imports, or None when there is none."""
    try:
        out = subprocess.run([sys.executable, "-c", _TORCH_PROBE], capture_output=True, text=True, timeout=120)
        version, cuda_build, cuda, mps = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError, OSError, subprocess.SubprocessError):
        return None
    return version, cuda_build, bool(cuda), bool(mps)


def torch_suits(choice: TorchChoice) -> str | None:
    """The installed torch's version if it serves the chosen device, else None."""
    build = torch_build()
    if build is None:
        return None
    version, cuda_build, cuda, mps = build
    ok = {"cuda": cuda or cuda_build is not None, "mps": mps, "cpu": True}[choice.device]
    return version if ok else None


def unreachable(url: str, timeout: float = 10.0) -> str | None:
    """Why `url` cannot be fetched, in a few words, or None when it answers (or when only
    pip can tell: a certificate problem may be one pip's own settings solve)."""
    import socket
    import ssl
    import urllib.error
    import urllib.request

    if url.startswith("file:"):  # a mirror on disk: a folder per project
        folder = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
        return None if folder.exists() else f"no folder {folder}"
    request = urllib.request.Request(url, headers={"User-Agent": "inknhue-installer"})
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLError):
            return None
        return _os_reason(exc.reason, timeout)
    except (OSError, socket.timeout, ValueError) as exc:
        return _os_reason(exc, timeout)


def _os_reason(reason, timeout: float) -> str:
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return f"no answer within {timeout:.0f} s"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason).strip() or type(reason).__name__


_LOG_TIME = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.,]+ ")
_FETCH_FAILED = re.compile(r"Could not fetch URL (\S+?): (.*?) - skipping")
#: pip's closing words when nothing could be fetched: the consequence, never the cause
_CONSEQUENCES = ("Could not find a version that satisfies", "No matching distribution found",
                 "ResolutionImpossible", "RequirementsConflicted", "DistributionNotFound", "Exception:")


def pip_failure_cause(log: str) -> str:
    """The real reason a pip run failed, from its --log file: the hosts that could not be
    reached and why, else pip's own meaningful errors (never just "No matching distribution
    found for filelock" when the index behind it was unreachable)."""
    lines = [_LOG_TIME.sub("", line) for line in log.splitlines()]
    unreached: dict[str, str] = {}
    for line in lines:
        match = _FETCH_FAILED.search(line)
        if match and not match.group(1).rstrip("/").endswith("/pip"):
            host = urllib.parse.urlsplit(match.group(1)).netloc or match.group(1)
            unreached.setdefault(host, _network_reason(match.group(2)))
    if unreached:
        return "; ".join(f"{host}: {why}" for host, why in unreached.items())
    errors = [line.split("ERROR: ", 1)[1].strip() for line in lines if "ERROR: " in line]
    # the exception that ended pip, e.g. "OSError: [Errno 28] No space left on device"
    raised = [line.strip() for line in lines
              if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Timeout\w*|Read\w*): ", line)]
    meaningful = [e for e in errors + raised[-1:] if e and not any(c in e for c in _CONSEQUENCES)]
    described: dict[str, str] = {}  # a host (or a text) -> what went wrong, the fullest wording wins
    for text in meaningful or errors[-1:]:
        url = re.search(r"https?://[^\s'\")]+", text)
        if url and re.search(r"\[Errno|HTTP error \d{3}|\d{3} (Client|Server) Error|timed out|CERTIFICATE_VERIFY"
                             r"|ProxyError|Connection", text):
            key, why = urllib.parse.urlsplit(url.group()).netloc, _network_reason(text)
            if len(why) > len(described.get(key, "")):
                described[key] = why
        else:
            described.setdefault(text[:300], "")
    return "; ".join(f"{key}: {why}" if why else key for key, why in list(described.items())[-2:]) \
        or "no reason in pip's log"


def _network_reason(text: str) -> str:
    """pip's (urllib3's) wording of a failed request, in a few words."""
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno:
        return errno.group(1).strip()
    http = re.search(r"(\d{3}) (?:Client|Server) Error: (.+?) for url", text)
    if http:
        return f"HTTP {http.group(1)} {http.group(2)}"
    http = re.search(r"HTTP error (\d{3})", text)
    if http:
        return f"HTTP {http.group(1)}"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "its TLS certificate could not be verified (a proxy that inspects traffic? pip's --cert option)"
    if "timed out" in text.lower():
        return "no answer in time (timed out)"
    if "ProxyError" in text:
        return "the proxy refused the connection"
    return text.removeprefix("connection error: ").strip()[:300]


def pip_install(*args: str, python: str | None = None) -> str | None:
    """`pip install ARGS` (in `python`, this one by default) with its usual output; None on
    success, else the real cause, read from pip's own debug log."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "pip.log"
        done = subprocess.run([python or sys.executable, "-m", "pip", "--disable-pip-version-check",
                               "--log", str(log), "install", *args], stderr=subprocess.PIPE, text=True,
                              errors="replace")
        said, conflicts = resolver_notes(done.stderr or "")
        if said:
            print(said, file=sys.stderr, end="" if said.endswith("\n") else "\n", flush=True)
        if conflicts:
            say(f"pip: {len(conflicts)} package(s) already in this Python want other versions of what they "
                f"use ({conflicts[0]}{', ...' if len(conflicts) > 1 else ''}); pip reports it as an ERROR but "
                f"installed everything: inkn'hue does not use them, nothing to do")
        if done.returncode == 0:
            return None
        text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    return pip_failure_cause(text) if text else f"pip exited with status {done.returncode}"


_RESOLVER = "ERROR: pip's dependency resolver does not currently take into account"


def resolver_notes(stderr: str) -> tuple[str, list[str]]:
    """pip's stderr without its dependency-resolver block (an ERROR line that follows a
    successful install when other packages of this Python conflict), and that block's
    conflicts, named by package."""
    kept, conflicts, inside = [], [], False
    for line in stderr.splitlines(keepends=True):
        if line.startswith(_RESOLVER):
            inside = True
            continue
        if inside and (" requires " in line or "which is incompatible" in line or "but you have" in line):
            conflicts.append(line.split(" requires ")[0].strip())
            continue
        inside = False
        kept.append(line)
    return "".join(kept), conflicts


def pip(*args: str) -> None:
    cause = pip_install(*args)
    if cause:
        raise InknhueError(f"pip could not install {' '.join(a for a in args if not a.startswith('-'))}: {cause}; "
                           f"fix that (network? proxy? disk space?) and run the installer again: it resumes")


def pypi_torch_note(choice: TorchChoice) -> str:
    """What PyPI's torch is for this machine, compared with the build that was chosen."""
    system, machine = platform.system(), platform.machine().lower()
    if system == "Windows":
        return ("PyPI's torch for Windows is CPU-only: inkn'hue runs on the CPU (minutes a page) until the "
                "installer is run again where download.pytorch.org answers" if choice.device == "cuda"
                else "PyPI's torch for Windows is the CPU build, the same as the one chosen")
    if system == "Linux" and machine in ("x86_64", "amd64"):
        if choice.device == "cuda":
            return ("PyPI's torch for Linux x86-64 is built for one CUDA version, which may need a newer "
                    "driver than this one: the installer checks the GPU once it is in")
        return ("PyPI's torch for Linux x86-64 bundles the CUDA libraries: it runs on the CPU all the same, "
                "but takes about 4.5 GB more disk than the CPU build")
    return "PyPI's torch for this system may differ from the chosen build: the installer checks it once it is in"


def install_torch(device: str, torch_index: str = TORCH_INDEX) -> TorchChoice:
    choice = choose_torch(device, torch_index)
    installed = torch_suits(choice)
    if installed:  # one line: what is there and why it stays (not a build chosen, then another kept)
        build = torch_build()
        cuda_on_cpu = choice.device == "cpu" and build is not None and build[1] is not None
        say(f"torch: {installed} already installed and suitable for {choice.device} ({choice.why.split(':')[0]})"
            + ("; a CUDA build, which runs on the CPU too: kept, nothing to download" if cuda_on_cpu
               else ": kept, nothing to download"))
        return choice
    say(f"torch: {choice.device} ({choice.why})")
    if choice.index is None:
        cause = pip_install("torch")
        if cause:
            raise InknhueError(f"torch could not be installed from PyPI: {cause}; check the network (a proxy? "
                               f"HTTPS_PROXY), then run the installer again: it resumes")
        return choice
    host = urllib.parse.urlsplit(choice.index).netloc or choice.index
    problem = unreachable(f"{choice.index}/torch/")
    if problem:
        problem = f"{host}: {problem}"
        say(f"torch: {choice.index} cannot be reached ({problem})")
    else:
        say(f"torch: installing from {choice.index}")
        problem = pip_install("torch", "--index-url", choice.index)
        if problem is None:
            return choice
        say(f"torch: the install from {choice.index} failed: {problem} (pip's last lines above follow from that)")
    say(f"torch: falling back to PyPI's build; {pypi_torch_note(choice)}")
    cause = pip_install("torch")
    if cause:
        raise InknhueError(f"torch could not be installed: from {choice.index}: {problem}; from PyPI: {cause}; "
                           f"check the network (a proxy? HTTPS_PROXY), or use --torch-index URL with a mirror "
                           f"of download.pytorch.org/whl, then run the installer again: it resumes")
    return _after_fallback(choice)


def _after_fallback(choice: TorchChoice) -> TorchChoice:
    """Say what PyPI's torch turned out to be; a CUDA choice it cannot serve becomes the CPU."""
    build = torch_build()
    if build is None:
        raise InknhueError("torch was installed from PyPI but does not import; run the installer again")
    version, cuda_build, cuda, mps = build
    kind = f"built for CUDA {cuda_build}" if cuda_build else "CPU-only" if not mps else "with MPS"
    say(f"torch: PyPI's {version} installed ({kind})")
    if choice.device == "cuda" and not cuda:
        say("torch: this build cannot use the NVIDIA GPU here, so the backend will run on the CPU; run the "
            "installer again where download.pytorch.org answers to get the CUDA build")
        return TorchChoice("cpu", None, "PyPI's build, without the GPU")
    return TorchChoice(choice.device, None, "PyPI's build")


def install_dependencies(extras: tuple[str, ...] = ()) -> None:
    """The package's requirements, and those of `extras` (its optional-dependencies: cluster)."""
    from importlib.metadata import PackageNotFoundError, requires

    def wanted(requirement: str) -> bool:
        marker = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", requirement)
        return marker is None or marker.group(1) in extras

    try:
        needed = [r.split(";")[0].strip() for r in requires("inknhue") or [] if wanted(r)]
    except PackageNotFoundError:
        raise InknhueError("the inknhue package is not installed in this Python; run installer/install.py") from None
    missing = [r for r in needed if not _satisfied(r)]
    if missing:
        say(f"dependencies: installing {', '.join(missing)}")
        pip(*missing)
    else:
        say("dependencies: all present")


def _satisfied(requirement: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    name = re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0]
    try:
        version(name)
        return True
    except PackageNotFoundError:
        return False


# --- weights ----------------------------------------------------------------------------

def check_released(source: Path, own: bool) -> str:
    """Whether `source` holds the released weights, by the hub's sha256 of each file: refused
    when one differs (unless `own`: weights of one's own, e.g. fine-tuned); returns what the
    manifest records for `inknhue doctor`: "released", "own" or "unchecked" (no hub answered)."""
    from ..weights import hub

    if own:
        say("weights: your own (--own-weights): not checked against the released files")
        return "own"
    try:
        expected = hub.expected_files()
    except hub.DownloadError as exc:
        say(f"weights: not checked against the released files: {exc.host} did not answer ({exc.reason}); "
            f"copied as they are (`inknhue doctor` says so)")
        return "unchecked"
    for item in expected:
        path = source / item.path
        digest = hub.file_digest(path, item.algorithm)
        if digest != item.digest:
            raise InknhueError(f"--weights-from {source}: {item.path} is not the released file ({item.algorithm} "
                               f"{digest[:12]}..., the release's is {item.digest[:12]}...); copy the files from "
                               f"{weights.HF_REPO} again, or add --own-weights if these are weights of your own")
    say("weights: the released files (each checked by its sha256 on the hub)")
    return "released"


def install_weights(manifest: Manifest, target: Path, source: Path | None, own: bool = False) -> str | None:
    """Copy the weights from `source`, or download them; returns None when they are in place,
    else why the download failed (everything else can still be installed)."""
    from ..weights import hub

    if source is not None:
        missing = weights.missing_files(source)
        if missing:
            raise InknhueError(f"--weights-from {source} lacks {', '.join(missing)}")
        manifest.info["weights_origin"] = check_released(source, own)
        changed = [name for name in weights.FILES if manifest.copy(source / name, target / name)]
        for name in [n for n in manifest.files if n.startswith(str(target / hub.DOWNLOADS) + os.sep)]:
            Path(name).unlink(missing_ok=True)  # a download this installer began is not needed any more
            del manifest.files[name]
        manifest.save()
        say(f"weights: {'copied ' + ', '.join(changed) if changed else 'already in place'} ({target})")
    else:
        manifest.info["weights_origin"] = "released"  # downloaded: verified as they come
        before = {name: (target / name).exists() for name in (*weights.FILES, hub.RECORD)}
        manifest.make_dir(target)
        manifest.save()  # an interrupted download must still be uninstallable
        try:
            hub.download(target, report=lambda line: say(f"weights: {line}"))
        except hub.DownloadError as exc:
            say("weights: not downloaded; installing the rest first (what to do follows at the end)")
            return f"{exc.host} ({exc.reason})"
        finally:
            # what arrived is ours to uninstall, from a run that stopped half way too
            for name in (*weights.FILES, hub.RECORD):
                path = target / name
                if path.is_file() and (not before.get(name, True) or str(path) in manifest.files):
                    manifest.files[str(path)] = _sha256(path)
            downloads = target / hub.DOWNLOADS
            for name in [n for n in manifest.files if n.startswith(str(downloads) + os.sep)]:
                if not Path(name).exists():
                    del manifest.files[name]
            for part in (downloads.rglob("*.part") if downloads.is_dir() else ()):
                manifest.files.setdefault(str(part), "partial download")
            manifest.save()
    from ..weights.checkpoints import load_alignment_vae, load_shading_generator

    load_shading_generator(target)
    load_alignment_vae(target)
    say("weights: every network loads strictly")
    return None


def weights_missing_message(problem: str, target: Path, rerun: str) -> str:
    """The one line that ends an install whose weights could not be downloaded."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    files = [*weights.FILES]
    return (f"incomplete: the weights could not be downloaded from {problem}. Everything else is installed "
            f"(the backend, torch, the Krita plugin and its settings); only the weights are missing, so nothing "
            f"can be colorized yet. Either run `{rerun}` again once the hub answers (it resumes the download), "
            f"or fetch {', '.join(files[:-1])} and {files[-1]} from {endpoint}/{weights.HF_REPO} on a machine that "
            f"is online, keep those paths under one folder DIR, and run `{rerun} --weights-from DIR`: the files "
            f"are checked and copied into {target}.")


# --- Krita ------------------------------------------------------------------------------

@dataclass
class KritaPlaces:
    resources: Path   #: where pykrita/ lives
    kritarc: Path
    kind: str         #: "native", "flatpak", "given"


def krita_places(given: Path | None = None) -> KritaPlaces:
    home = Path.home()
    system = platform.system()
    if system == "Windows":
        appdata = Path(os.environ.get("APPDATA", home / "AppData" / "Roaming"))
        local = Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local"))
        native = KritaPlaces(appdata / "krita", local / "kritarc", "native")
    elif system == "Darwin":
        native = KritaPlaces(home / "Library/Application Support/krita", home / "Library/Preferences/kritarc",
                             "native")
    else:
        data = Path(os.environ.get("XDG_DATA_HOME") or home / ".local/share")
        config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
        native = KritaPlaces(data / "krita", config / "kritarc", "native")
        flatpak = home / ".var/app/org.kde.krita"
        if given is None and flatpak.is_dir() and not native.resources.is_dir():
            return KritaPlaces(flatpak / "data/krita", flatpak / "config/kritarc", "flatpak")
    if given is not None:
        return KritaPlaces(given, native.kritarc, "given")
    return native


def plugin_sources(source: Path) -> list[tuple[str, Path]]:
    """(relative path in pykrita/, file) for the plugin, as the release zip holds it."""
    plugin = source / "plugin"
    if not (plugin / f"{PLUGIN}.desktop").is_file():
        raise InknhueError(f"no plugin at {plugin}: run the installer from the inkn'hue source folder")
    files = [(f"{PLUGIN}.desktop", plugin / f"{PLUGIN}.desktop")]
    for path in sorted((plugin / PLUGIN).rglob("*")):
        parts = set(path.relative_to(plugin).parts)
        if path.is_file() and not {"__pycache__", "vendor"} & parts and path.suffix != ".pyc":
            files.append((str(path.relative_to(plugin)), path))
    files.append((f"{PLUGIN}/manual.html", source / "resources/manual.html"))
    return files


def install_plugin(manifest: Manifest, places: KritaPlaces, source: Path) -> int:
    pykrita = places.resources / "pykrita"
    keep, changed = set(), 0
    for relative, path in plugin_sources(source):
        target = pykrita / relative
        keep.add(str(target))
        changed += manifest.write(target, path.read_bytes())
    vendor = pykrita / PLUGIN / "vendor"
    keep |= {name for name in manifest.files if name.startswith(str(vendor) + os.sep)}
    changed += manifest.forget_missing_under(pykrita / PLUGIN, keep)  # an upgrade drops old files
    manifest.save()
    say(f"plugin: {'updated ' + str(changed) + ' files' if changed else 'up to date'} in {pykrita}")
    return changed


def install_pyzmq(manifest: Manifest, places: KritaPlaces, wheels_from: Path | None, mode: str) -> None:
    """pyzmq for Krita's Python: wheels per Python tag in the plugin's vendor/ folder."""
    vendor = places.resources / "pykrita" / PLUGIN / "vendor"
    if mode == "system":
        say("pyzmq: using the system's python3-zmq (distribution builds of Krita)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        found = _pyzmq_wheels(Path(tmp), wheels_from)
        if not found:
            raise InknhueError("pyzmq: no wheel found for Krita's Pythons; connect to the internet, or give "
                               "--wheels-from DIR, or --pyzmq system with your distribution's python3-zmq")
        keep = set()
        for tag, wheel in sorted(found.items()):
            changed = 0
            with zipfile.ZipFile(wheel) as archive:
                for member in archive.infolist():
                    if member.is_dir():
                        continue
                    target = vendor / tag / member.filename
                    keep.add(str(target))
                    changed += manifest.write(target, archive.read(member))
            say(f"pyzmq: {wheel.name} {'unpacked' if changed else 'already in place'} for {tag}")
        manifest.forget_missing_under(vendor, keep)
        manifest.save()


def _pyzmq_wheels(folder: Path, wheels_from: Path | None) -> dict[str, Path]:
    platforms = {"Linux": ["manylinux_2_28_x86_64", "manylinux_2_26_x86_64", "manylinux_2_17_x86_64",
                           "manylinux2014_x86_64"],
                 "Windows": ["win_amd64"], "Darwin": ["macosx_11_0_arm64", "macosx_10_15_universal2"]}
    found = {}
    for tag in KRITA_PYTHONS:
        if wheels_from is not None:
            match = sorted(wheels_from.glob(f"pyzmq-*-{tag}-*.whl"))
            if match:
                found[tag] = match[-1]
            continue
        args = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                "--python-version", tag[2] + "." + tag[3:], "--implementation", "cp", "-d", str(folder / tag)]
        for name in platforms.get(platform.system(), []):
            args += ["--platform", name]
        if subprocess.run(args + ["pyzmq"], capture_output=True).returncode == 0:
            found[tag] = next((folder / tag).glob("pyzmq-*.whl"))
        else:
            say(f"pyzmq: no wheel for {tag} could be downloaded")
    return found


KRITARC_KEY = f"enable_{PLUGIN}"


def enable_in_kritarc(manifest: Manifest, kritarc: Path) -> None:
    """Set [python] enable_inknhue_krita=true, leaving every other line as it was."""
    text = kritarc.read_text(encoding="utf-8") if kritarc.exists() else None
    lines = text.splitlines() if text is not None else []
    previous, new_lines = _set_ini(lines, "python", KRITARC_KEY, "true")
    if "kritarc" not in manifest.settings:
        manifest.settings["kritarc"] = {"path": str(kritarc), "previous": previous, "existed": text is not None,
                                        "section_existed": "[python]" in (line.strip() for line in lines)}
    new_text = "\n".join(new_lines) + "\n"
    if new_text != text:
        manifest.make_dir(kritarc.parent)
        kritarc.write_text(new_text, encoding="utf-8")
        say(f"krita: enabled the plugin in {kritarc}")
    else:
        say("krita: the plugin is already enabled")
    manifest.save()


def _set_ini(lines: list[str], section: str, key: str, value: str | None) -> tuple[str | None, list[str]]:
    """Set (or with value None, remove) key in [section]; returns (its old value, new lines)."""
    out, previous, in_section, done, seen_section = [], None, False, False, False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            if in_section and not done and value is not None:
                blank = 0  # after the section's last setting, before the blank lines that end it
                while blank < len(out) and not out[len(out) - 1 - blank].strip():
                    blank += 1
                out.insert(len(out) - blank, f"{key}={value}")
                done = True
            in_section = stripped[1:-1] == section
            seen_section |= in_section
        elif in_section and "=" in stripped and stripped.split("=", 1)[0].strip() == key:
            previous = stripped.split("=", 1)[1].strip()
            if value is not None and not done:
                out.append(f"{key}={value}")
                done = True
            continue
        out.append(line)
    if value is not None and not done:
        if in_section:
            out.append(f"{key}={value}")
        else:
            if out and out[-1].strip():
                out.append("")
            out += [f"[{section}]", f"{key}={value}"]
    return previous, out


def write_plugin_config(manifest: Manifest, device: str, weights_dir: Path) -> None:
    inknhue = weights.inknhue_script()
    config = {"version": 1, "backend": {"command": [str(inknhue), "serve"], "weights": str(weights_dir),
                                        "device": device}}
    path = user_data_dir() / "plugin.json"
    changed = manifest.write(path, (json.dumps(config, indent=2) + "\n").encode())
    manifest.save()
    say(f"config: {'wrote' if changed else 'unchanged'} {path}")


# --- install and uninstall ----------------------------------------------------------------

#: `inknhue install`'s options (flags, argparse keywords); installer/install.py offers them too
OPTIONS = (
    (("--device",), dict(choices=("auto", "cuda", "cpu", "mps"), default="auto",
                         help="which torch build: auto (default) takes CUDA where an NVIDIA driver answers, MPS "
                              "on Apple Silicon, else the CPU")),
    (("--torch-index",), dict(metavar="URL", default=TORCH_INDEX,
                              help=f"the PyTorch wheel index, or a mirror of it (default {TORCH_INDEX}); the "
                                   f"build's tag (cpu, cu128...) is appended. Where it cannot be reached, "
                                   f"PyPI's torch is installed instead")),
    (("--weights-from",), dict(type=Path, metavar="DIR",
                               help="copy the weights from DIR (the hub repo's layout) instead of downloading "
                                    "them: the offline route")),
    (("--own-weights",), dict(action="store_true",
                              help="with --weights-from: weights of your own (e.g. fine-tuned), copied without "
                                   "checking them against the released files' sha256")),
    (("--no-weights",), dict(action="store_true", help="do not install the weights")),
    (("--krita-dir",), dict(type=Path, metavar="PATH",
                            help="Krita's resource folder (default: found for this system, Flatpak too)")),
    (("--wheels-from",), dict(type=Path, metavar="DIR",
                              help="take pyzmq wheels for Krita's Python from DIR instead of downloading them")),
    (("--pyzmq",), dict(choices=("vendor", "system"), default="vendor",
                        help="vendor: pyzmq wheels inside the plugin (default); system: the distribution's "
                             "python3-zmq")),
    (("--cluster",), dict(action="store_true",
                          help="also install Ray, for chapters across GPUs and machines "
                               "(`inknhue colorize ... --cluster`; the extra inknhue[cluster])")),
)


def add_options(parser) -> None:
    """Add OPTIONS to an argparse parser."""
    for flags, keywords in OPTIONS:
        parser.add_argument(*flags, **keywords)


def options_argv(args) -> list[str]:
    """The command-line form of the OPTIONS that `args` sets to other than their defaults
    (paths made absolute), to hand on or to show as the command to run again."""
    argv = []
    for flags, keywords in OPTIONS:
        value = getattr(args, flags[0][2:].replace("-", "_"))
        if value is None or value == keywords.get("default", False):
            continue
        if keywords.get("action") == "store_true":
            argv.append(flags[0])
        else:
            argv += [flags[0], str(Path(value).expanduser().resolve()) if isinstance(value, Path) else str(value)]
    return argv


def command_line(argv: list[str]) -> str:
    """argv as the user's shell would take it."""
    if os.name == "nt":
        return subprocess.list2cmdline(argv)
    import shlex

    return shlex.join(argv)


def install(device: str = "auto", weights_from: Path | None = None, no_weights: bool = False,
            krita_dir: Path | None = None, source: Path | None = None, wheels_from: Path | None = None,
            pyzmq: str = "vendor", skip_torch: bool = False, torch_index: str = TORCH_INDEX,
            rerun: str | None = None, own_weights: bool = False, cluster: bool = False) -> int:
    """Returns 0 when everything is in place, INCOMPLETE when only the weights are missing."""
    data = user_data_dir()
    manifest = Manifest(data / MANIFEST)
    manifest.info.setdefault("venv", sys.prefix)
    rerun = rerun or command_line([weights.inknhue_command(), "install"])
    manifest.info["rerun"] = rerun  # `inknhue doctor` names it
    if not skip_torch:
        device = install_torch(device, torch_index).device
    install_dependencies(("cluster",) if cluster else ())
    weights_dir = weights.resolve_weights_dir()
    problem = None
    if no_weights:
        say("weights: skipped (--no-weights)")
    else:
        if own_weights and weights_from is None:
            raise InknhueError("--own-weights says the weights from --weights-from DIR are your own: give DIR too")
        problem = install_weights(manifest, weights_dir, weights_from, own_weights)
    places = krita_places(krita_dir)
    source = source or Path(os.environ.get("INKNHUE_SOURCE", Path(__file__).resolve().parents[2]))
    install_plugin(manifest, places, source)
    install_pyzmq(manifest, places, wheels_from, pyzmq)
    enable_in_kritarc(manifest, places.kritarc)
    write_plugin_config(manifest, device, weights_dir)
    manifest.info.update(krita=str(places.resources), kritarc=str(places.kritarc), kind=places.kind)
    manifest.save()
    if problem:
        print(f"inknhue install: {weights_missing_message(problem, weights_dir, rerun)}", file=sys.stderr,
              flush=True)
        return INCOMPLETE
    inknhue = weights.inknhue_command()
    say(f"done: start Krita; the inkn'hue docker is under Settings > Dockers. The command line is {inknhue}; "
        f"`{inknhue} doctor` checks everything.")
    return 0


def uninstall() -> int:
    data = user_data_dir()
    path = data / MANIFEST
    if not path.exists():
        say(f"nothing to uninstall (no {path})")
        return 0
    manifest = Manifest(path)
    for name in sorted(manifest.files, reverse=True):
        Path(name).unlink(missing_ok=True)
    kritarc = manifest.settings.get("kritarc")
    if kritarc:
        rc = Path(kritarc["path"])
        if rc.exists():
            lines = rc.read_text(encoding="utf-8").splitlines()
            _, lines = _set_ini(lines, "python", KRITARC_KEY, kritarc["previous"])
            if not kritarc["section_existed"]:
                lines = _drop_empty_section(lines, "python")
            if not kritarc["existed"] and not any(line.strip() for line in lines):
                rc.unlink()
            else:
                rc.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for folder in sorted(manifest.dirs, key=len, reverse=True):
        _remove_empty_tree(Path(folder))
    path.unlink()
    remove_logs()
    say(f"removed {len(manifest.files)} files and the Krita setting this installer made")
    return 0


def _remove_empty_tree(folder: Path) -> None:
    """Remove `folder` and what is under it as far as only empty folders (and Python's
    byte-code caches) remain: a file that is not ours keeps its folder."""
    if not folder.is_dir():
        return
    for cache in list(folder.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            sub.rmdir()
        except OSError:
            pass
    try:
        folder.rmdir()
    except OSError:
        pass


def _drop_empty_section(lines: list[str], section: str) -> list[str]:
    """Remove `[section]` if nothing but blank lines follow it before the next section."""
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == f"[{section}]")
    except StopIteration:
        return lines
    end = next((i for i in range(start + 1, len(lines)) if lines[i].strip().startswith("[")), len(lines))
    if any(line.strip() for line in lines[start + 1:end]):
        return lines
    head = lines[:start]
    while head and not head[-1].strip():
        head.pop()
    return head + lines[end:]


def remove_logs() -> None:
    from ..logs import log_dir

    try:
        folder = log_dir()
    except ImportError:
        return
    shutil.rmtree(folder, ignore_errors=True)
    for parent in (folder.parent,):
        try:
            parent.rmdir()
        except OSError:
            pass
