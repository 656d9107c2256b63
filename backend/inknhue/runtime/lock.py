"""One writer at a time: `FileLock`, a lock file beside what it guards, naming its holder.

    from inknhue.runtime.lock import FileLock, Locked

    lock = FileLock(folder / ".inknhue-chapter.json.lock", f"the manifest {manifest}")
    stale = lock.acquire()   # raises Locked (an InknhueError: one line for the user)
    try:
        ...                  # read, change and write what the lock guards
    finally:
        lock.release()
    # or: with FileLock(path, what): ...   (the holder of a stale lock is then not returned)

The API, all of it:
- `FileLock(path, what=None)`: the lock kept in the file `path`; `what` names what it guards
  in messages ("the manifest OUT/.inknhue-chapter.json"). One object per holding, in one
  thread; not re-entrant (a second `acquire` on a held object is a RuntimeError, and a
  second FileLock on the same path in the same process is refused like anyone else).
- `acquire() -> Holder | None`: takes it, or raises `Locked`. Returns the `Holder` of a
  stale lock it took over (its process is gone), so the caller can say so, else None.
- `release()`: gives it back (removes the file only if it is still this holding's; a
  no-op when not held). Ctrl-C and errors: release in a `finally`; a process killed
  outright leaves the file, and the next `acquire` on this host takes it over.
- `held`, `holder() -> Holder | None` (who the file names, or None: no file, unreadable).
- `Locked(InknhueError)`: `.path`, `.holder` (None when the file cannot be read); its
  message names the holder and what to do, and `code` is "locked".
- `Holder`: `pid`, `host`, `command`, `started` (seconds since the epoch),
  `process_started` (Linux); `describe()` (for messages), `alive()` (True/False on this
  host, None from another: unknown).

Chapters lock their manifest with it (`batch.chapter.Manifest.lock`, held from the plan's
reading of the manifest to the run's end); so should anything else that writes one output
folder (a cluster driver: "two drivers on one output folder: the second refuses"). The
driver holds it on its own host, for the whole run; workers never touch it.

How it works, so that it also holds on a shared folder:
- The lock file is written whole under a unique name, then hard-linked to the lock's name
  (`link` fails if the name exists, atomically, also over NFS); where hard links are not
  supported, it is created with O_EXCL instead. Its content is one JSON object: pid, host,
  command, started (seconds since the epoch), and the process's start time where the
  system gives one (Linux), which tells a reused pid from the holder.
- The holder keeps an exclusive `flock` on it while it holds it (POSIX).
- A lock is stale when its holder is of this host and its process is gone (or its pid now
  belongs to another process). A run that finds a stale lock takes it over: it takes the
  file's flock (which a live holder would keep it from), checks that the name still means
  that very file, removes it and tries again; `acquire` returns the holder it replaced.
  A lock held from another host is never taken over (its pid says nothing here): the
  message says so, and how to remove it once that run is known to be gone.
- `release` removes the file only if it is still its own.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import InknhueError
from ..logs import one_line
from .processes import pid_alive, process_start, this_host
from .small_files import parse_json, read_small_file

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows: the pid check alone)
    fcntl = None

#: the most a lock file may hold (a holder is a few hundred bytes)
MAX_LOCK_BYTES = 64 << 10
_COMMAND_CHARS = 300
_ATTEMPTS = 20


def _command() -> str:
    argv = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else ["python"]
    return one_line(" ".join(argv), _COMMAND_CHARS)


@dataclass(frozen=True)
class Holder:
    """Who holds a lock."""

    pid: int
    host: str
    command: str
    started: float  #: seconds since the epoch
    process_started: int | None = None  #: the process's start in clock ticks since boot (Linux)

    @classmethod
    def me(cls) -> Holder:
        return cls(os.getpid(), this_host(), _command(), time.time(), process_start(os.getpid()))

    @classmethod
    def from_json(cls, data: object) -> Holder:
        if not isinstance(data, dict):
            raise ValueError("not an object")
        pid, host, command, started = (data.get(k) for k in ("pid", "host", "command", "started"))
        process_started = data.get("process_started")
        if (not isinstance(pid, int) or isinstance(pid, bool) or not isinstance(host, str)
                or not isinstance(command, str) or not isinstance(started, (int, float))
                or not (process_started is None or isinstance(process_started, int))):
            raise ValueError("not a lock holder")
        return cls(pid, host, command, float(started), process_started)

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return (f"pid {self.pid} on {one_line(self.host, 100)}, `{one_line(self.command, _COMMAND_CHARS)}`, "
                f"started {when}")

    def alive(self) -> bool | None:
        """Whether the holder runs: True or False on this host; None from another (unknown)."""
        if self.host != this_host():
            return None
        return pid_alive(self.pid, self.process_started)


class Locked(InknhueError):
    """Someone else holds the lock; `holder` says who (None when the lock file is unreadable)."""

    code = "locked"

    def __init__(self, message: str, path: Path, holder: Holder | None):
        super().__init__(message)
        self.path, self.holder = path, holder


class FileLock:
    """An exclusive lock on `what` (words for messages: "the manifest FOLDER/x.json"), kept in
    the file `path`. Not re-entrant; one FileLock object per holding."""

    def __init__(self, path: str | os.PathLike, what: str | None = None):
        self.path = Path(path)
        self.what = what or str(self.path)
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None

    # --- holding -----------------------------------------------------------------------

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> Holder | None:
        """Take the lock, or raise Locked naming its holder. Returns the holder of a stale lock
        taken over (its process is gone), else None."""
        if self.held:
            raise RuntimeError(f"{self.path} is held already")
        replaced = None
        for _ in range(_ATTEMPTS):
            if self._create(Holder.me()):
                return replaced
            stale = self._break_if_stale()
            if stale is not None:
                replaced = stale
        raise Locked(f"{self.what} is locked and the lock {self.path} keeps changing hands; try again", self.path,
                     self.holder())

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            if self._same_file(self.path, self._identity):
                self.path.unlink()
        except OSError:
            pass
        finally:
            os.close(self._fd)  # and with it the flock
            self._fd = self._identity = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # --- who holds it --------------------------------------------------------------------

    def holder(self) -> Holder | None:
        """The holder the lock file names, or None when there is none or it is unreadable."""
        try:
            return Holder.from_json(parse_json(read_small_file(self.path, MAX_LOCK_BYTES)))
        except (OSError, ValueError):
            return None

    # --- inside ------------------------------------------------------------------------

    @staticmethod
    def _same_file(path: Path, identity: tuple[int, int] | None) -> bool:
        try:
            info = os.stat(path, follow_symlinks=False)
        except OSError:
            return False
        return identity is not None and (info.st_dev, info.st_ino) == identity

    def _create(self, me: Holder) -> bool:
        """Make the lock file with our holder, atomically; False if it exists."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(asdict(me), sort_keys=True).encode("utf-8")
        temporary = self.path.with_name(f".{self.path.name}.{me.pid}.{os.urandom(4).hex()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            os.write(fd, text)
            os.fsync(fd)
            try:
                os.link(temporary, self.path)
            except FileExistsError:
                os.close(fd)
                return False
            except OSError:  # no hard links here (FAT, some shares): O_EXCL instead
                os.close(fd)
                fd = -1
                return self._create_exclusive(text)
            self._hold(fd)
            fd = -1
            return True
        finally:
            if fd != -1:
                try:
                    os.close(fd)
                except OSError:
                    pass
            try:
                temporary.unlink()
            except OSError:
                pass

    def _create_exclusive(self, text: bytes) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, text)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            self.path.unlink(missing_ok=True)
            raise
        self._hold(fd)
        return True

    def _hold(self, fd: int) -> None:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours alone: nobody has it open yet to lock
            except OSError:
                pass  # a filesystem without flock: the pid check alone tells a stale lock
        info = os.fstat(fd)
        self._fd, self._identity = fd, (info.st_dev, info.st_ino)

    def _break_if_stale(self) -> Holder | None:
        """Remove the lock file if its holder is gone; returns that holder, or None if the lock
        file changed meanwhile (try again). Raises Locked when someone holds it."""
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None  # released meanwhile: try again
        try:
            running = None
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # its holder keeps it: it runs
                    running = True
                except OSError:
                    pass  # no flock on this filesystem
            info = os.fstat(fd)
            if not self._same_file(self.path, (info.st_dev, info.st_ino)):
                return None  # taken over by someone else meanwhile: try again
            holder = self._read_holder(fd, info)
            if running:
                raise self._locked(holder, running=True)
            if holder is None:
                raise self._locked(None)
            alive = holder.alive()
            if alive is not False:
                raise self._locked(holder, running=alive)
            try:
                self.path.unlink()  # under its flock, and still the very file: nobody else can have it now
            except FileNotFoundError:
                pass
            return holder
        finally:
            os.close(fd)

    @staticmethod
    def _read_holder(fd: int, info: os.stat_result) -> Holder | None:
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_LOCK_BYTES:
            return None
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            return Holder.from_json(parse_json(os.read(fd, MAX_LOCK_BYTES + 1)))
        except (OSError, ValueError):
            return None

    def _locked(self, holder: Holder | None, running: bool | None = None) -> Locked:
        if holder is None and running:
            return Locked(f"{self.what} is locked by another run (its lock file {self.path} does not say whose "
                          f"yet); wait for it to finish", self.path, None)
        if holder is None:
            return Locked(f"{self.what} is locked, but the lock file {self.path} cannot be read (damaged?): if no "
                          f"other run is writing there, remove it and try again", self.path, None)
        if running is None:
            return Locked(f"{self.what} is locked by another run: {holder.describe()}; from this host it cannot "
                          f"be told whether it still runs: wait for it, or remove {self.path} once it is known to "
                          f"be gone", self.path, holder)
        return Locked(f"{self.what} is locked by another run: {holder.describe()}; wait for it to finish",
                      self.path, holder)
