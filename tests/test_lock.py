"""`runtime.lock.FileLock`: one holder at a time, a message naming it, stale locks recognised.

The chapters' use of it, with real processes, is in test_chapter.py.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from inknhue.errors import InknhueError
from inknhue.runtime.lock import FileLock, Locked
from inknhue.runtime.processes import pid_alive, process_start, this_host


def dead_pid() -> int:
    """The pid of a process that has ended."""
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)


def plant(path, **holder):
    fields = {"pid": os.getpid(), "host": this_host(), "command": "inknhue colorize pages -o out",
              "started": time.time() - 60, "process_started": None, **holder}
    path.write_text(json.dumps(fields))


def test_a_second_holder_is_refused_with_a_message_naming_the_first(tmp_path):
    first = FileLock(tmp_path / "x.lock", "the manifest out/x.json")
    assert first.acquire() is None
    holder = first.holder()
    assert (holder.pid, holder.host) == (os.getpid(), this_host())
    with pytest.raises(Locked) as excinfo:
        FileLock(tmp_path / "x.lock", "the manifest out/x.json").acquire()
    message = str(excinfo.value)
    assert isinstance(excinfo.value, InknhueError) and "\n" not in message
    assert message.startswith(f"the manifest out/x.json is locked by another run: pid {os.getpid()} "
                              f"on {this_host()}, `")
    assert "started 20" in message and message.endswith("wait for it to finish")
    assert excinfo.value.holder == holder
    first.release()
    assert not (tmp_path / "x.lock").exists()
    with FileLock(tmp_path / "x.lock") as again:  # free again
        assert again.held


def test_a_lock_whose_process_is_gone_is_taken_over(tmp_path):
    pid = dead_pid()
    plant(tmp_path / "x.lock", pid=pid)
    lock = FileLock(tmp_path / "x.lock")
    stale = lock.acquire()
    assert stale is not None and stale.pid == pid and "inknhue colorize pages -o out" in stale.describe()
    assert lock.holder().pid == os.getpid()
    lock.release()


@pytest.mark.skipif(process_start(os.getpid()) is None, reason="the system does not say when a process started")
def test_a_reused_pid_is_not_taken_for_the_holder(tmp_path):
    """The pid now belongs to another process (this one, started at another time)."""
    plant(tmp_path / "x.lock", process_started=process_start(os.getpid()) - 1)
    assert pid_alive(os.getpid()) and not pid_alive(os.getpid(), process_start(os.getpid()) - 1)
    lock = FileLock(tmp_path / "x.lock")
    assert lock.acquire().pid == os.getpid()
    lock.release()


def test_a_live_holder_of_this_host_is_never_taken_over(tmp_path):
    plant(tmp_path / "x.lock")  # this process, as if it held it without the flock (another filesystem)
    with pytest.raises(Locked, match=f"pid {os.getpid()} on "):
        FileLock(tmp_path / "x.lock").acquire()
    assert (tmp_path / "x.lock").exists()


def test_a_lock_from_another_host_is_left_to_its_owner(tmp_path):
    plant(tmp_path / "x.lock", pid=dead_pid(), host="render-node-7")
    with pytest.raises(Locked) as excinfo:
        FileLock(tmp_path / "x.lock", "the manifest M").acquire()
    message = str(excinfo.value)
    assert "pid " in message and "on render-node-7" in message
    assert "cannot be told whether it still runs" in message and f"remove {tmp_path / 'x.lock'}" in message
    assert (tmp_path / "x.lock").exists()


@pytest.mark.parametrize("content", [b"", b"not json", b"[" * 100_000, json.dumps({"pid": "1"}).encode()])
def test_a_damaged_lock_file_is_refused_with_what_to_do(tmp_path, content):
    (tmp_path / "x.lock").write_bytes(content)
    with pytest.raises(Locked) as excinfo:
        FileLock(tmp_path / "x.lock", "the manifest M").acquire()
    assert "cannot be read (damaged?)" in str(excinfo.value) and excinfo.value.holder is None


def test_release_removes_only_its_own_lock_file(tmp_path):
    lock = FileLock(tmp_path / "x.lock")
    lock.acquire()
    os.unlink(tmp_path / "x.lock")  # someone removed it by hand, and another run took it
    plant(tmp_path / "x.lock", pid=12345678)
    lock.release()
    assert json.loads((tmp_path / "x.lock").read_text())["pid"] == 12345678


def test_a_killed_holder_process_leaves_a_lock_that_is_taken_over(tmp_path):
    """A real process holds the lock and is killed outright (SIGKILL)."""
    script = ("import sys, time; from inknhue.runtime.lock import FileLock; lock = FileLock(sys.argv[1]); "
              "lock.acquire(); print('held', flush=True); time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "x.lock")], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(Locked, match=f"pid {holder.pid} "):
            FileLock(tmp_path / "x.lock").acquire()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    lock = FileLock(tmp_path / "x.lock")
    assert lock.acquire().pid == holder.pid
    lock.release()
