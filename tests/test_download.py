"""`inknhue weights download` against a local stand-in for the Hugging Face hub."""

import json

import pytest

from fakehub import FakeHub
from inknhue import weights


@pytest.fixture
def hub(parity_weights):
    with FakeHub(parity_weights, weights.HF_REPO) as server:
        yield server


def download(cli, hub, target):
    return cli("weights", "download", "--weights", target, env={"HF_ENDPOINT": hub.url})


def test_download_fetches_verifies_and_records_every_file(cli, hub, tmp_path, parity_weights):
    target = tmp_path / "w"
    done = download(cli, hub, target)
    assert done.returncode == 0, done.stderr
    for name in weights.FILES:
        assert (target / name).read_bytes() == (parity_weights / name).read_bytes()
        assert f"{name}: verified" in done.stderr
    record = json.loads((target / "inknhue-weights.json").read_text())
    assert set(record["files"]) == set(weights.FILES)
    checked = cli("weights", "check", "--weights", target)
    assert checked.returncode == 0, checked.stderr


def test_a_second_download_fetches_nothing(cli, hub, tmp_path):
    target = tmp_path / "w"
    assert download(cli, hub, target).returncode == 0
    hub.requests.clear()
    again = download(cli, hub, target)
    assert again.returncode == 0
    assert [r for r in hub.requests if "/resolve/" in r[1]] == []
    assert again.stderr.count("present and verified") == len(weights.FILES)


def test_an_interrupted_download_resumes_where_it_stopped(cli, hub, tmp_path, parity_weights):
    target = tmp_path / "w"
    hub.cut_after[weights.SHADER] = 3_000_000
    first = download(cli, hub, target)
    assert first.returncode == 1
    assert "run again to resume" in first.stderr
    assert not (target / weights.SHADER).exists()  # never a truncated file where the loader looks
    partial = target / ".downloads" / (weights.SHADER + ".part")
    assert partial.stat().st_size == 3_000_000

    hub.requests.clear()
    second = download(cli, hub, target)
    assert second.returncode == 0, second.stderr
    assert ("GET", f"/{weights.HF_REPO}/resolve/main/{weights.SHADER}", "bytes=3000000-") in hub.requests
    assert (target / weights.SHADER).read_bytes() == (parity_weights / weights.SHADER).read_bytes()


def test_a_corrupted_file_is_refused_and_deleted(cli, hub, tmp_path):
    target = tmp_path / "w"
    hub.corrupt.add(weights.KL_F8)
    done = download(cli, hub, target)
    assert done.returncode == 1
    assert "kl-f8.ckpt arrived damaged" in done.stderr
    assert not (target / weights.KL_F8).exists()
    assert not (target / ".downloads" / (weights.KL_F8 + ".part")).exists()


def test_a_damaged_local_copy_is_replaced(cli, hub, tmp_path, parity_weights):
    target = tmp_path / "w"
    assert download(cli, hub, target).returncode == 0
    damaged = bytearray((target / weights.CONDITIONAL).read_bytes())
    damaged[1000] ^= 0xFF
    (target / weights.CONDITIONAL).write_bytes(bytes(damaged))
    again = download(cli, hub, target)
    assert again.returncode == 0, again.stderr
    assert (target / weights.CONDITIONAL).read_bytes() == (parity_weights / weights.CONDITIONAL).read_bytes()


def test_an_unreachable_hub_is_a_clear_error(cli, tmp_path):
    done = cli("weights", "download", "--weights", tmp_path / "w",
               env={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_ETAG_TIMEOUT": "2"})
    assert done.returncode == 1
    assert "could not list the weights" in done.stderr and "127.0.0.1:9" in done.stderr
