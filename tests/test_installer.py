"""installer/install.py end to end, into a throwaway HOME, with no network.

The installer's venv reuses this test environment's packages (torch among them) through
--reuse-packages; the weights come from a local folder or a local stand-in for the
Hugging Face hub; pyzmq for Krita's Python comes from a local wheel.
"""

import hashlib
import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from fakehub import FakeHub
from inknhue import weights

ROOT = Path(__file__).parent.parent
SITE = sysconfig.get_paths()["purelib"]
#: caches this machine's toolchains create in any HOME (pyenv's venv wakes rustup): not ours
NOT_OURS = (".rustup", ".cargo")


def home_env(home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "INKNHUE_", "HF_"))}
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


def install(home: Path, *args, env_extra=None, check=True):
    done = subprocess.run([sys.executable, str(ROOT / "installer/install.py"), "--reuse-packages", SITE, *args],
                          capture_output=True, text=True, env=home_env(home, **(env_extra or {})), timeout=900)
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

    from inknhue.installer import KritaPlaces, Manifest, install_plugin

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
