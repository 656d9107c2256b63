"""installer/install.py end to end, into a throwaway HOME, with no network.

The installer's venv reuses this test environment's packages (torch among them) through
--reuse-packages; the weights come from a local folder or a local stand-in for the
Hugging Face hub; pyzmq for Krita's Python comes from a local wheel. Where torch itself is
installed, it is a stand-in wheel from local indexes (tests/fakeindex.py), and pip sees
only those: no configuration files, no retries.
"""

import hashlib
import importlib.util
import json
import os
import shutil
import re
import shlex
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from fakehub import FakeHub
from fakeindex import IndexServer, closed_port, make_wheel, repack, simple_index

from inknhue import weights

ROOT = Path(__file__).parent.parent
SITE = sysconfig.get_paths()["purelib"]
#: caches this machine's toolchains create in any HOME (pyenv's venv wakes rustup): not ours
NOT_OURS = (".rustup", ".cargo")


#: the hub the installer checks --weights-from against: the parity weights stand for the release
RELEASE_HUB: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def release_hub(parity_weights):
    with FakeHub(parity_weights, weights.HF_REPO) as hub:
        RELEASE_HUB["url"] = hub.url
        yield hub
    RELEASE_HUB.clear()


def home_env(home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "INKNHUE_", "HF_"))}
    if RELEASE_HUB:
        env["HF_ENDPOINT"] = RELEASE_HUB["url"]
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / ".local/share"), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_STATE_HOME=str(home / ".local/state"), XDG_CACHE_HOME=str(home / ".cache"), **extra)
    return env


def snapshot(home: Path, skip=()) -> dict:
    """Every file under HOME: content digest and modification time."""
    found = {}
    for path in sorted(home.rglob("*")):
        relative = path.relative_to(home)
        if relative.parts[0] in NOT_OURS or any(str(relative).startswith(s) for s in skip):
            continue
        if path.is_file():
            found[str(relative)] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
        else:
            found[str(relative) + "/"] = None
    return found


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> Path:
    """A cp311 pyzmq wheel made from the one installed here (Krita's Python here is 3.11)."""
    import zmq

    folder = tmp_path_factory.mktemp("wheels")
    site = Path(zmq.__file__).parent.parent
    version = zmq.__version__
    wheel = folder / f"pyzmq-{version}-cp311-cp311-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for top in [p for p in site.iterdir() if p.name in ("zmq", "pyzmq.libs") or
                    (p.name.startswith("pyzmq-") and p.name.endswith(".dist-info"))]:
            for path in top.rglob("*"):
                if path.is_file() and "__pycache__" not in path.parts:
                    archive.write(path, path.relative_to(site))
    return folder


def install(home: Path, *args, env_extra=None, check=True, reuse=SITE, pip=None):
    """Run installer/install.py; with `pip` (settings as PIP_* variables), pip sees only those."""
    env = home_env(home, **(env_extra or {}))
    if pip is not None:
        env = {k: v for k, v in env.items() if not k.startswith("PIP_")}
        env.update(PIP_CONFIG_FILE=os.devnull, PIP_RETRIES="0", PIP_DEFAULT_TIMEOUT="10", PIP_NO_INPUT="1", **pip)
    done = subprocess.run([sys.executable, str(ROOT / "installer/install.py"), "--reuse-packages", str(reuse), *args],
                          capture_output=True, text=True, env=env, timeout=900)
    if check:
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done


def doctor(home: Path):
    inknhue = home / ".local/share/inknhue/venv/bin/inknhue"
    return subprocess.run([str(inknhue), "doctor"], capture_output=True, text=True, env=home_env(home), timeout=300)


@pytest.fixture
def home(isolated_user_dirs) -> Path:
    """The throwaway HOME every test gets (tests/conftest.py), with its XDG folders."""
    return isolated_user_dirs


def test_install_from_a_local_weights_folder_then_again_then_uninstall(home, parity_weights, wheelhouse):
    before = snapshot(home)
    first = install(home, "--device", "cpu", "--weights-from", str(parity_weights), "--wheels-from", str(wheelhouse))
    assert "torch: 2." in first.stdout and "already installed and suitable" in first.stdout

    data, pykrita = home / ".local/share/inknhue", home / ".local/share/krita/pykrita"
    for name in weights.FILES:
        assert (data / "weights" / name).read_bytes() == (parity_weights / name).read_bytes()
    assert (pykrita / "inknhue_krita.desktop").is_file() and (pykrita / "inknhue_krita/docker.py").is_file()
    assert (pykrita / "inknhue_krita/manual.html").is_file()
    assert (pykrita / "inknhue_krita/vendor/cp311/zmq/__init__.py").is_file()
    assert "[python]\nenable_inknhue_krita=true" in (home / ".config/kritarc").read_text()
    config = json.loads((data / "plugin.json").read_text())
    assert config["backend"]["command"] == [str(data / "venv/bin/inknhue"), "serve"]
    assert config["backend"]["device"] == "cpu" and config["backend"]["weights"] == str(data / "weights")

    checked = doctor(home)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "everything works" in checked.stdout and "(vendored)" in checked.stdout

    installed = snapshot(home, skip=(".local/state/inknhue/log",))
    second = install(home, "--device", "cpu", "--weights-from", str(parity_weights), "--wheels-from", str(wheelhouse))
    assert "backend: up to date" in second.stdout and "plugin: up to date" in second.stdout
    assert snapshot(home, skip=(".local/state/inknhue/log",)) == installed  # not a byte, not a timestamp

    install(home, "--uninstall")
    assert snapshot(home) == before


def test_other_krita_settings_survive_install_and_uninstall(home, parity_weights, wheelhouse):
    kritarc = home / ".config/kritarc"
    original = "[General]\ntheme=Krita dark\n\n[python]\nenable_other_plugin=true\n\n[MainWindow]\nState=AAA=\n"
    kritarc.write_text(original)
    install(home, "--device", "cpu", "--weights-from", str(parity_weights), "--wheels-from", str(wheelhouse),
            "--no-weights")
    text = kritarc.read_text()
    ours = "enable_other_plugin=true\nenable_inknhue_krita=true\n"
    assert text == original.replace("enable_other_plugin=true\n", ours)
    install(home, "--uninstall")
    assert kritarc.read_text() == original


def test_weights_from_the_hub_resume_after_an_interruption(home, parity_weights, wheelhouse):
    with FakeHub(parity_weights, weights.HF_REPO) as hub:
        hub.cut_after[weights.SHADER] = 2_000_000
        env = {"HF_ENDPOINT": hub.url}
        first = install(home, "--device", "cpu", "--wheels-from", str(wheelhouse), env_extra=env, check=False)
        assert first.returncode == 3 and "it resumes the download" in first.stderr  # incomplete
        assert (home / ".local/share/krita/pykrita/inknhue_krita/docker.py").is_file()  # the rest is in place
        hub.requests.clear()
        second = install(home, "--device", "cpu", "--wheels-from", str(wheelhouse), env_extra=env)
        assert "resuming at 2.0 MB" in second.stdout
        assert any(r[2] == "bytes=2000000-" for r in hub.requests)
    shader = home / ".local/share/inknhue/weights" / weights.SHADER
    assert shader.read_bytes() == (parity_weights / weights.SHADER).read_bytes()
    install(home, "--uninstall")
    assert not (home / ".local/share/inknhue").exists()


def test_a_corrupted_download_is_refused(home, parity_weights, wheelhouse):
    with FakeHub(parity_weights, weights.HF_REPO) as hub:
        hub.corrupt.add(weights.CONDITIONAL)
        done = install(home, "--device", "cpu", "--wheels-from", str(wheelhouse),
                       env_extra={"HF_ENDPOINT": hub.url}, check=False)
    assert done.returncode == 3 and "model_epoch000019.ckpt arrived damaged" in done.stderr
    assert not (home / ".local/share/inknhue/weights" / weights.CONDITIONAL).exists()
    install(home, "--uninstall")


def test_the_installed_plugin_works_in_a_real_krita(home, parity_weights, wheelhouse, tmp_path):
    import test_krita_e2e as e2e  # skips where there is no Krita

    install(home, "--device", "cpu", "--weights-from", str(parity_weights), "--wheels-from", str(wheelhouse))
    root = tmp_path / "krita"
    root.mkdir()
    env = home_env(home)
    env.pop("PYTHONPATH", None)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env["XDG_RUNTIME_DIR"] = str(runtime)
    driver = home / ".local/share/krita/pykrita"
    import shutil

    shutil.copytree(ROOT / "tests/e2e/inknhue_e2e_driver", driver / "inknhue_e2e_driver")
    shutil.copy(ROOT / "tests/e2e/inknhue_e2e_driver.desktop", driver)
    with open(home / ".config/kritarc", "a") as rc:
        rc.write("enable_inknhue_e2e_driver=true\n")
    report = e2e.run_page(root, env, parity_weights)
    e2e.keep(report["screenshot"], "krita-e2e-installed.png")
    assert "inknhue_krita/vendor/cp311/zmq" in (home / ".local/share/inknhue/plugin.log").read_text()
    checked = doctor(home)
    assert checked.returncode == 0, checked.stdout


def test_an_upgrade_replaces_only_what_the_installer_put_there(tmp_path):
    import shutil

    from inknhue.install.installer import KritaPlaces, Manifest, install_plugin

    source = tmp_path / "source"
    shutil.copytree(ROOT / "plugin", source / "plugin", ignore=shutil.ignore_patterns("__pycache__"))
    (source / "resources").mkdir()
    shutil.copy(ROOT / "resources/manual.html", source / "resources")
    (source / "plugin/inknhue_krita/old_module.py").write_text("# in version 1 only\n")
    places = KritaPlaces(tmp_path / "krita", tmp_path / "kritarc", "given")
    manifest = Manifest(tmp_path / "manifest.json")
    install_plugin(manifest, places, source)
    plugin = places.resources / "pykrita/inknhue_krita"
    (plugin / "my_notes.txt").write_text("the artist's own file")
    (source / "plugin/inknhue_krita/old_module.py").unlink()  # version 2 drops it
    (source / "plugin/inknhue_krita/logic.py").write_text("# version 2\n")
    assert install_plugin(manifest, places, source) == 2
    assert not (plugin / "old_module.py").exists()
    assert (plugin / "logic.py").read_text() == "# version 2\n"
    assert (plugin / "my_notes.txt").read_text() == "the artist's own file"


# --- a fresh machine where the PyTorch index, PyPI or the hub refuse connections -----------

FAKE_TORCH = '''"""A stand-in for torch: what the installer asks of it, nothing more."""
__version__ = "2.6.0+fake"


class version:
    cuda = None


class cuda:
    @staticmethod
    def is_available():
        return False


class backends:
    class mps:
        @staticmethod
        def is_available():
            return False
'''


@pytest.fixture(scope="module")
def indexes(tmp_path_factory) -> SimpleNamespace:
    """A stand-in torch that needs filelock (as the real one does), in two local indexes:
    `pytorch` (torch only, for an IndexServer) and `pypi` (a file:// index with filelock and
    setuptools too); `build` a --find-links folder with setuptools alone (pip's build
    isolation needs it to build the backend); `site` this environment's packages without
    torch and filelock."""
    root = tmp_path_factory.mktemp("indexes")
    wheels = root / "wheels"
    torch = make_wheel(wheels, "torch", "2.6.0", {"torch/__init__.py": FAKE_TORCH}, requires=["filelock"])
    filelock = make_wheel(wheels, "filelock", "3.0.0", {"filelock/__init__.py": "FileLock = None\n"})
    setuptools = repack("setuptools", root / "build")
    site = root / "site"
    site.mkdir()
    for entry in Path(SITE).iterdir():
        if not entry.name.lower().startswith(("torch", "functorch", "filelock", "triton", "nvidia")):
            (site / entry.name).symlink_to(entry)
    simple_index(root / "pytorch", [torch])
    return SimpleNamespace(pytorch=root / "pytorch", pypi=simple_index(root / "pypi", [torch, filelock, setuptools]
                                                                       ).as_uri(),
                           build=root / "build", site=site)


def host_of(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[0]


def test_torch_comes_from_pypi_when_the_pytorch_index_refuses_connections(home, indexes, wheelhouse):
    refused = closed_port()
    done = install(home, "--device", "cpu", "--torch-index", f"{refused}/whl", "--no-weights",
                   "--wheels-from", str(wheelhouse), reuse=indexes.site, pip={"PIP_INDEX_URL": indexes.pypi})
    said = done.stdout
    assert f"torch: {refused}/whl/cpu cannot be reached ({host_of(refused)}: Connection refused)" in said
    assert "torch: falling back to PyPI's build; PyPI's torch for Linux x86-64 bundles the CUDA libraries" in said
    assert "torch: PyPI's 2.6.0+fake installed (CPU-only)" in said
    assert "done:" in said and (home / ".local/share/krita/pykrita/inknhue_krita/docker.py").is_file()
    assert json.loads((home / ".local/share/inknhue/plugin.json").read_text())["backend"]["device"] == "cpu"

    again = install(home, "--device", "cpu", "--torch-index", f"{refused}/whl", "--no-weights",
                    "--wheels-from", str(wheelhouse), reuse=indexes.site, pip={"PIP_INDEX_URL": indexes.pypi})
    assert "torch: 2.6.0+fake already installed and suitable" in again.stdout and "falling back" not in again.stdout


def test_a_pytorch_index_failing_half_way_is_named_as_the_cause_not_filelock(home, indexes, wheelhouse):
    """The index answers for torch but refuses its dependencies: pip ends with "No matching
    distribution found for filelock"; the installer names the index and falls back to PyPI."""
    with IndexServer(indexes.pytorch, allow={"torch"}) as pytorch:
        done = install(home, "--device", "cpu", "--torch-index", pytorch.url, "--no-weights",
                       "--wheels-from", str(wheelhouse), reuse=indexes.site, pip={"PIP_INDEX_URL": indexes.pypi})
        asked = list(pytorch.requests)
    assert "/cpu/torch/" in asked and "/cpu/filelock/" in asked  # pip really tried it first
    assert "No matching distribution found for filelock" in done.stderr  # pip's words, as the issue saw them
    assert (f"torch: the install from {pytorch.url}/cpu failed: {host_of(pytorch.url)}: HTTP 403 Forbidden "
            f"(pip's last lines above follow from that)") in done.stdout
    assert "torch: PyPI's 2.6.0+fake installed (CPU-only)" in done.stdout and "done:" in done.stdout


def test_when_pypi_refuses_too_the_real_causes_end_the_install(home, indexes, wheelhouse):
    refused = closed_port()
    with IndexServer() as pypi:  # 403 Forbidden for everything
        done = install(home, "--device", "cpu", "--torch-index", f"{refused}/whl", "--no-weights",
                       "--wheels-from", str(wheelhouse), reuse=indexes.site, check=False,
                       pip={"PIP_INDEX_URL": f"{pypi.url}/simple", "PIP_FIND_LINKS": str(indexes.build)})
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"inknhue: error: torch could not be installed: from {refused}/whl/cpu: "
                           f"{host_of(refused)}: Connection refused; "
                           f"from PyPI: {host_of(pypi.url)}: HTTP 403 Forbidden;")
    assert (done.stdout + done.stderr).count("torch could not be installed") == 1


def test_weights_that_cannot_be_downloaded_leave_the_rest_installed_and_one_clear_error(
        home, parity_weights, wheelhouse):
    before = snapshot(home)
    refused = closed_port()
    first = install(home, "--device", "cpu", "--wheels-from", str(wheelhouse), env_extra={"HF_ENDPOINT": refused},
                    check=False)
    assert first.returncode == 3, first.stdout[-3000:] + first.stderr[-3000:]  # incomplete
    data, pykrita = home / ".local/share/inknhue", home / ".local/share/krita/pykrita"
    assert (pykrita / "inknhue_krita/docker.py").is_file() and (pykrita / "inknhue_krita/vendor/cp311").is_dir()
    assert "enable_inknhue_krita=true" in (home / ".config/kritarc").read_text()
    assert (data / "plugin.json").is_file() and not (data / "weights" / weights.SHADER).exists()

    said = (first.stdout + first.stderr).splitlines()
    problems = [line for line in said if re.search(r"error|incomplete|refused|could not", line, re.I)]
    assert len(problems) == 1, problems
    line = problems[0]
    assert line == first.stderr.strip().splitlines()[-1]
    assert line.startswith(f"inknhue install: incomplete: the weights could not be downloaded from {host_of(refused)}")
    assert "Connection refused" in line and f"copied into {data / 'weights'}." in line
    assert all(name in line for name in weights.FILES)
    rerun = shlex.join([sys.executable, str(ROOT / "installer/install.py"), "--reuse-packages", SITE,
                        "--device", "cpu", "--wheels-from", str(wheelhouse)])
    assert f"Either run `{rerun}` again" in line and f"run `{rerun} --weights-from DIR`" in line
    assert all(Path(shlex.split(c)[0]).is_absolute() for c in re.findall(r"`([^`]+)`", line))  # never off PATH

    checked = doctor(home)
    assert checked.returncode == 1
    assert re.search(rf"BAD\s+weights\s+{re.escape(str(data / 'weights'))}: missing", checked.stdout), checked.stdout
    assert f"fix: run `{rerun}` again when" in checked.stdout and "--weights-from DIR" in checked.stdout

    offline = shlex.split(rerun) + ["--weights-from", str(parity_weights)]  # the command as printed
    second = subprocess.run(offline, capture_output=True, text=True, env=home_env(home), timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "weights: every network loads strictly" in second.stdout and "done:" in second.stdout
    assert (data / "weights" / weights.SHADER).read_bytes() == (parity_weights / weights.SHADER).read_bytes()

    install(home, "--uninstall")
    assert snapshot(home) == before


def test_pip_failure_cause_is_the_unreachable_host_not_the_missing_package():
    from inknhue.install.installer import pip_failure_cause

    pip23 = ("2026-11-30T05:40:28,858 Could not fetch URL https://download.pytorch.org/whl/cpu/filelock/: connection "
             "error: HTTPSConnectionPool(host='download.pytorch.org', port=443): Max retries exceeded with url: "
             "/whl/cpu/filelock/ (Caused by NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection "
             "object at 0x7f>: Failed to establish a new connection: [Errno 101] Network is unreachable')) - skipping\n"
             "2026-11-30T05:40:28,862 ERROR: Could not find a version that satisfies the requirement filelock "
             "(from torch) (from versions: none)\n"
             "2026-11-30T05:40:28,862 ERROR: No matching distribution found for filelock\n")
    assert pip_failure_cause(pip23) == "download.pytorch.org: Network is unreachable"
    pip26 = ("Could not fetch URL https://pypi.org/simple/torch/: connection error: [Errno -3] Temporary failure in "
             "name resolution - skipping\nCould not fetch URL https://pypi.org/simple/pip/: connection error: "
             "[Errno -3] Temporary failure in name resolution - skipping\n"
             "ERROR: No matching distribution found for torch\n")
    assert pip_failure_cause(pip26) == "pypi.org: Temporary failure in name resolution"
    forbidden = ("Could not fetch URL http://10.0.0.1:3141/simple/torch/: 403 Client Error: Forbidden for url: "
                 "http://10.0.0.1:3141/simple/torch/ - skipping\nERROR: No matching distribution found for torch\n")
    assert pip_failure_cause(forbidden) == "10.0.0.1:3141: HTTP 403 Forbidden"
    wheel_refused = (  # the index page answered, the file did not (pip 23's words)
        "  ERROR: HTTP error 403 while getting http://10.0.0.1:3141/files/torch-2.6.0-py3-none-any.whl\n"
        "ERROR: Could not install requirement torch from http://10.0.0.1:3141/files/torch-2.6.0-py3-none-any.whl "
        "because of HTTP error 403 Client Error: Forbidden for url: http://10.0.0.1:3141/files/torch-2.6.0-py3-none-"
        "any.whl for URL http://10.0.0.1:3141/files/torch-2.6.0-py3-none-any.whl\n")
    assert pip_failure_cause(wheel_refused) == "10.0.0.1:3141: HTTP 403 Forbidden"
    disk = ("ERROR: Exception:\nTraceback (most recent call last):\n  File \"x.py\", line 1, in f\n"
            "OSError: [Errno 28] No space left on device\n")
    assert pip_failure_cause(disk) == "OSError: [Errno 28] No space left on device"
    nothing_for_this_python = ("ERROR: Could not find a version that satisfies the requirement torch (from versions: "
                               "none)\nERROR: No matching distribution found for torch\n")
    assert pip_failure_cause(nothing_for_this_python) == "No matching distribution found for torch"


def test_a_refusing_hub_is_a_download_error_naming_the_host(monkeypatch):
    from inknhue.weights import hub

    with IndexServer() as refusing:  # 403 Forbidden for everything
        monkeypatch.setenv("HF_ENDPOINT", refusing.url)
        with pytest.raises(hub.DownloadError) as caught:
            hub.expected_files()
    assert caught.value.host == host_of(refusing.url) and "403" in caught.value.reason
    assert f"`{weights.inknhue_command()} weights download`" in str(caught.value)


def test_an_error_before_logging_is_set_up_prints_once(tmp_path):
    """The installer's first run has no platformdirs yet, so no log file: an error must not
    reach logging's last resort too (it printed every error twice)."""
    code = ("import sys; sys.modules['platformdirs'] = None; from inknhue.cli import main; "
            f"sys.exit(main(['colorize', {str(tmp_path / 'no-page.png')!r}, '--hints', 'h.png', '-o', 'out.png']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and "no-page.png" in done.stderr, done.stderr


def _install_script_parser():
    spec = importlib.util.spec_from_file_location("install_script", ROOT / "installer/install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_parser()


def _options(help_text: str) -> set[str]:
    """The long options an argparse --help lists (its option lines, not its prose)."""
    found = set()
    for line in help_text.splitlines():
        if line.startswith("  -"):
            found |= set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", line.strip().split("  ")[0]))
    return found


def test_install_help_shows_every_option_and_the_readme_documents_exactly_those():
    # standard library only (-S: no site-packages), as on a fresh machine
    shown = subprocess.run([sys.executable, "-S", str(ROOT / "installer/install.py"), "--help"],
                           capture_output=True, text=True, timeout=60, env={"PATH": os.environ.get("PATH", "")})
    assert shown.returncode == 0, shown.stderr
    options = _options(shown.stdout) - {"--help"}
    parser = _install_script_parser()
    declared = {flag for action in parser._actions for flag in action.option_strings if flag.startswith("--")}
    assert options == declared - {"--help"}
    assert all(action.help for action in parser._actions)  # every option says what it does

    backend = subprocess.run([sys.executable, "-m", "inknhue", "install", "--help"],
                             capture_output=True, text=True, timeout=60)
    assert _options(backend.stdout) - {"--help"} <= options  # install.py offers all of `inknhue install`

    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", section)) - {"--help"}
    assert documented == options, (f"README only: {sorted(documented - options)}; "
                                   f"--help only: {sorted(options - documented)}")


def test_the_index_probe_says_in_a_few_words_why_an_index_cannot_be_used(tmp_path):
    from inknhue.install.installer import unreachable

    assert unreachable(f"{closed_port()}/whl/cpu/torch/") == "Connection refused"
    with IndexServer() as refusing:
        assert unreachable(f"{refusing.url}/whl/cpu/torch/") == "HTTP 403 Forbidden"
    (tmp_path / "cpu/torch").mkdir(parents=True)
    assert unreachable((tmp_path / "cpu/torch").as_uri() + "/") is None  # a mirror on disk
    assert unreachable((tmp_path / "cu128/torch").as_uri() + "/").startswith("no folder")


@pytest.mark.parametrize("extras, expected", [((), ["numpy>=1.24"]), (("cluster",), ["numpy>=1.24", "ray>=2.9"])])
def test_cluster_adds_ray_and_nothing_else_of_the_extras(monkeypatch, extras, expected):
    import importlib.metadata

    from inknhue.install import installer

    monkeypatch.setattr(importlib.metadata, "requires", lambda name: [
        "numpy>=1.24", 'ray>=2.9; extra == "cluster"', 'pytest>=8; extra == "test"'])
    monkeypatch.setattr(installer, "_satisfied", lambda requirement: False)
    asked = []
    monkeypatch.setattr(installer, "pip", lambda *args: asked.extend(args))
    installer.install_dependencies(extras)
    assert asked == expected


def test_pips_resolver_block_is_said_in_words_and_the_rest_kept():
    from inknhue.install.installer import resolver_notes

    stderr = ("WARNING: something else\n"
              "ERROR: pip's dependency resolver does not currently take into account all the packages that are "
              "installed. This behaviour is the source of the following dependency conflicts.\n"
              "spacy 3.7 requires numpy<2, but you have numpy 2.1 which is incompatible.\n"
              "after\n")
    kept, conflicts = resolver_notes(stderr)
    assert kept == "WARNING: something else\nafter\n" and conflicts == ["spacy 3.7"]


def test_weights_from_a_folder_are_checked_against_the_release(parity_weights, tmp_path, monkeypatch, capsys):
    from inknhue.errors import InknhueError
    from inknhue.install.installer import check_released

    monkeypatch.setenv("HF_ENDPOINT", RELEASE_HUB["url"])
    assert check_released(parity_weights, own=False) == "released"
    other = Path(shutil.copytree(parity_weights, tmp_path / "other"))
    data = bytearray((other / weights.SHADER).read_bytes())
    data[-1] ^= 1  # not the released file (random values would do the same)
    (other / weights.SHADER).write_bytes(bytes(data))
    with pytest.raises(InknhueError, match=f"{weights.SHADER} is not the released file .*--own-weights"):
        check_released(other, own=False)
    assert check_released(other, own=True) == "own"  # one's own fine-tuned weights, said as such
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # no hub: copied, and said to be unchecked
    assert check_released(other, own=False) == "unchecked"
    assert "not checked against the released files" in capsys.readouterr().out
