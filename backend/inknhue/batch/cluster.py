"""Chapters across GPUs and machines, on Ray: `inknhue colorize PAGES... -o FOLDER --cluster ADDRESS`.

The chapter is the same as chapter.py's (its plan, matching, manifest, lock, resume and
outputs); only the pages' colorizing is spread over Ray actors:

- ADDRESS: `ray` starts a local Ray on this machine (every GPU), `auto` joins the cluster
  Ray finds (`ray start` on this machine, or $RAY_ADDRESS), `ray://HOST:PORT` joins through
  Ray Client and `HOST:PORT` joins a head node's GCS. An address that does not answer is a
  one-line error within CONNECT_SECONDS; Ray's own errors (another Ray version on the
  cluster, say) are passed on whole. A Ray already started in this process is used as it is.
- Actors (PageWorker): one per GPU (`num_gpus=1`), or on a cluster without GPUs one per node
  with `--actor-cpus` CPUs each (`--actors N` sets the count either way). Each loads the
  models once and keeps them for every page it gets; a page goes to whichever actor is
  free. The driver reads each page and sends its pixels through Ray's object store; the
  result comes back the same way and the driver writes and records it (chapter.keep),
  so workers need no shared file system, only the weights (`--weights DIR` names a folder
  that each node must have; a node without them is named, with the fix).
- Faults: an actor that dies (killed, out of host memory) is restarted by Ray
  (`max_restarts`), and its page goes to another actor (Ray would retry an actor's task on
  the same actor only: a page that kills its actor would kill it again); a page is tried
  on at most MAX_TRIES actors, then reported and skipped like any failed page. A page whose
  own data is wrong fails once, as in the local loop. Ctrl-C (or a killed driver) leaves
  the manifest true: only written pages are recorded, and the same command goes on.
- Progress: one bar over the chapter, with pages per minute and the actors' state.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from ..errors import InknhueError, WeightsError
from . import chapter

log = logging.getLogger(__name__)

RAY_HINT = "pip install 'inknhue[cluster]' into inkn'hue's venv, or run the installer with --cluster"
#: seconds an address may take to answer before it is called unreachable
CONNECT_SECONDS = 10.0
#: actors one page is tried on before it is reported as failed
MAX_TRIES = 3
#: restarts Ray gives a dead actor
MAX_RESTARTS = 4
#: seconds between looks at the actors while pages run (the bar's refresh)
POLL_SECONDS = 0.5
#: pages sent to an actor at once: the next one waits in its queue while the driver writes
#: the last one's result and reads the next page, so the GPU never waits for the driver
IN_FLIGHT = 2


def import_ray():
    try:
        import ray
    except ImportError:
        raise InknhueError(f"--cluster needs Ray, which is not installed: {RAY_HINT}") from None
    return ray


#: what an HTTP/2 client sends first; a gRPC server (Ray's GCS and Ray Client both are)
#: answers it with its own SETTINGS frame at once
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def check_address(address: str) -> None:
    """ray://HOST:PORT and HOST:PORT must answer as a gRPC server within CONNECT_SECONDS
    (Ray itself would wait for minutes on a port that takes the connection and says nothing)."""
    target = address[len("ray://"):] if address.startswith("ray://") else address
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise InknhueError(f"--cluster {address}: give ray (a local Ray), auto, ray://HOST:PORT or HOST:PORT")
    deadline = time.monotonic() + CONNECT_SECONDS
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS) as conn:
            conn.sendall(_HTTP2_PREFACE)
            conn.settimeout(max(0.1, deadline - time.monotonic()))
            if not conn.recv(9):
                raise ConnectionResetError("closed without a word")
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise InknhueError(f"the Ray cluster at {address} does not answer ({reason} within "
                           f"{CONNECT_SECONDS:g} s): is `ray start --head` running there?") from None


def connect(ray, address: str) -> bool:
    """Starts or joins Ray; True when this call started the connection (and ends it)."""
    if ray.is_initialized():
        return False
    if address not in ("ray", "auto"):
        check_address(address)
    try:
        ray.init(address=None if address == "ray" else address, logging_level=logging.WARNING,
                 log_to_driver=False, include_dashboard=False if address == "ray" else None)
    except Exception as exc:  # Ray's own words: a version mismatch, no cluster found, ...
        where = "a local Ray" if address == "ray" else f"the Ray cluster at {address}"
        raise InknhueError(f"cannot start {where}: {' '.join(str(exc).split())}") from None
    return True


def _token_auth_if_a_token_is_here() -> None:
    """Ray 2.5x clusters started by `ray start` ask for a token, which a driver joining them
    by address only offers in token mode (RAY_AUTH_MODE): set it where a token is at hand
    (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token), unless the user chose."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or os.path.isfile(path):
        os.environ["RAY_AUTH_MODE"] = "token"


# --- the actors ----------------------------------------------------------------------------

class PageWorker:
    """One engine, warm, on one GPU (or a node's CPUs): what the local loop's colorist does,
    for every page it is sent. Made a Ray actor by `ray.remote(PageWorker)`."""

    def __init__(self, args, prior: str):
        from ..runtime import host_memory

        host_memory.reuse_freed_memory()  # as `inknhue colorize` does: before torch's threads start
        self.args, self.prior = args, prior
        self.node = socket.gethostname()
        self.colorist, self.error, self.notes = None, None, []

    def ready(self) -> dict:
        """Loads the engine (and checks the weights) once; says where it runs or why it cannot."""
        if self.colorist is None and self.error is None:
            try:
                plan = _Prior(self.prior)
                make = chapter._Flats if self.args.layer == "flats" else chapter._Here
                self.colorist = make(self.args, plan, self.notes.append)
            except WeightsError as exc:
                weights = self.args.weights or "the default weights folder"
                self.error = (f"node {self.node} cannot load the weights ({exc}): run `inknhue weights download` "
                              f"there, or give --weights a folder every node has (now: {weights})")
            except InknhueError as exc:
                self.error = f"node {self.node}: {exc}"
        return {"node": self.node, "pid": os.getpid(), "error": self.error}

    def colorize(self, request):
        self.ready()
        if self.error:
            raise InknhueError(self.error)
        notes_before = len(self.notes)
        final, ran, warnings = self.colorist.colorize(request, lambda text: None)
        return final, ran, warnings, self.notes[notes_before:], self.node


@dataclass
class _Prior:
    prior: str


@dataclass
class _Actor:
    handle: object
    index: int
    state: str = "starting"       #: starting, ready, gone
    node: str = "?"
    pid: int | None = None
    life: int = 0                 #: how many times it died (Ray restarts it)
    order: list = field(default_factory=list)  #: its jobs in flight, in the order it runs them
    culprit: object = None        #: the job it last died under


@dataclass
class _Job:
    page: chapter.Page
    tried: set[int] = field(default_factory=set)  #: actors that died under it
    started: float = 0.0
    life: int = 0                 #: the actor's life it was sent to


def actor_plan(ray, args) -> tuple[int, dict]:
    """How many actors, and the resources each asks for."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if args.device == "cuda" and not gpus:
        raise InknhueError("--device cuda: the Ray cluster has no GPU (ray status shows its resources); "
                           "leave --device out to run on its CPUs")
    use_gpus = gpus > 0 and args.device in ("auto", "cuda") and args.layer != "flats"
    if use_gpus:
        return args.actors or gpus, {"num_gpus": 1, "num_cpus": 1}
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    cpus = args.actor_cpus or max(1, int(min(node["Resources"].get("CPU", 1) for node in nodes)))
    return args.actors or len(nodes), {"num_gpus": 0, "num_cpus": cpus}


def run(args, say: Callable[[str], None]) -> int:
    """`inknhue colorize ... --cluster`; the exit codes are a chapter's (0, 1, 130)."""
    if args.server:
        raise InknhueError("--cluster and --server: pick one (a cluster runs its own engines)")
    if args.cluster not in ("ray", "auto"):
        _token_auth_if_a_token_is_here()  # before Ray is imported: it reads the mode once
    ray = import_ray()
    plan = chapter.make_plan(args)
    started_ray = False
    try:
        todo = [page for page in plan.pages if not page.skip]
        for line in chapter.opening_lines(args, plan, todo):
            say(line)
        if not todo:
            say(f"chapter: {chapter.Tally(skipped=[p.name for p in plan.pages]).line(len(plan.pages))}"
                f" -> {plan.folder}")
            return 0
        started_ray = connect(ray, args.cluster)
        return _Loop(ray, args, plan, say).run()
    finally:
        if plan.lock is not None:
            plan.lock.release()
        if started_ray:
            ray.shutdown()


class _Loop:
    def __init__(self, ray, args, plan, say):
        self.ray, self.args, self.plan, self.say = ray, args, plan, say
        self.tally = chapter.Tally()
        self.bar = chapter.chapter_bar(len(plan.pages))
        self.first = time.monotonic()

    def tell(self, line: str) -> None:
        log.info("%s", line)
        self.bar.write(line, file=sys.stderr)

    def run(self) -> int:
        ray, args, plan = self.ray, self.args, self.plan
        from ..page.imaging import read_rgb

        count, resources = actor_plan(ray, args)
        remote = ray.remote(PageWorker).options(max_restarts=MAX_RESTARTS, max_task_retries=0, **resources)
        kind = f"{resources['num_gpus']} GPU" if resources["num_gpus"] else f"{resources['num_cpus']} CPUs"
        self.say(f"cluster: {count} actor{'s' * (count != 1)}, {kind} each")
        actors = [_Actor(remote.remote(args, plan.prior), index) for index in range(count)]
        reference = read_rgb(plan.reference, "reference") if plan.reference else None
        queue = deque(_Job(page) for page in plan.pages if not page.skip)
        for page in plan.pages:
            if page.skip:
                self.tally.skipped.append(page.name)
                self.tell(f"skipped {page.name}: {page.skip}")
                self.bar.update(1)
        pending: dict = {}        # object ref -> (actor, job) for pages
        starting = {actor.handle.ready.remote(): actor for actor in actors}
        try:
            while queue or pending:
                if starting:
                    self._look_at_starting(starting, actors, wait=not any(a.state == "ready" for a in actors))
                self._dispatch(queue, pending, actors, reference)
                if not pending and not starting:
                    if queue and not any(a.state == "ready" for a in actors):
                        raise InknhueError("no actor is left to colorize on: "
                                           f"{self.tally.line(len(plan.pages))}")
                    if not queue:
                        break
                    continue
                done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS) if pending else ([], [])
                for ref in done:
                    actor, job = pending.pop(ref)
                    self._collect(ref, actor, job, queue, starting, actors)
                self._show(actors)
        except KeyboardInterrupt:  # pages in flight are dropped with their actors, below
            self.bar.close()
            self.say(f"interrupted: {self.tally.line(len(plan.pages))}; run the same command again to go on")
            return 130
        except InknhueError:
            self.bar.close()
            self.say(f"stopped: {self.tally.line(len(plan.pages))}")
            raise
        finally:
            self.bar.close()
            for actor in actors:
                ray.kill(actor.handle, no_restart=True)
        self.say(f"chapter: {self.tally.line(len(plan.pages))} -> {plan.folder}")
        return 1 if self.tally.failed else 0

    def _look_at_starting(self, starting: dict, actors: list[_Actor], wait: bool) -> None:
        ray = self.ray
        done, _ = ray.wait(list(starting), num_returns=1 if wait else len(starting),
                           timeout=POLL_SECONDS if wait else 0)
        for ref in done:
            actor = starting.pop(ref)
            try:
                info = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                actor.state = "gone"
                self.tell(f"actor {actor.index} could not start: {_first_line(exc)}")
                continue
            actor.node, actor.pid = info["node"], info["pid"]
            if info["error"]:
                actor.state = "gone"
                self.tell(f"actor {actor.index}: {info['error']}")
                if all(a.state == "gone" for a in actors):
                    raise InknhueError(info["error"])
                continue
            actor.state = "ready"
            self.tell(f"actor {actor.index} ready on {actor.node} (pid {actor.pid})")
        self._show(actors)

    def _dispatch(self, queue: deque, pending: dict, actors: list[_Actor], reference) -> None:
        while queue:
            job = queue[0]
            free = sorted((a for a in actors if a.state == "ready" and len(a.order) < IN_FLIGHT
                           and a.index not in job.tried), key=lambda a: len(a.order))
            if not free:
                if all(a.state == "gone" or a.index in job.tried for a in actors):
                    queue.popleft()  # no actor left that it has not killed
                    self._failed(job, f"its actor died on {len(job.tried)} tr{'ies' if len(job.tried) > 1 else 'y'}")
                    continue
                return
            queue.popleft()
            actor = free[0]
            if job.page.redo and not job.tried:
                self.tell(f"{job.page.name}: {job.page.redo}; colorizing it again")
            try:
                request = chapter.read_request(job.page, self.args, reference)
            except Exception as exc:  # a damaged page fails alone, here, before any actor sees it
                self._failed(job, chapter._page_failure(exc))
                continue
            job.started, job.life = time.perf_counter(), actor.life
            actor.order.append(job)
            pending[actor.handle.colorize.remote(request)] = (actor, job)

    def _collect(self, ref, actor: _Actor, job: _Job, queue: deque, starting: dict, actors) -> None:
        ray = self.ray
        try:
            final, ran, warnings, notes, node = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            running = actor.order[0] if actor.order else job  # the page it died under
            actor.order.remove(job)
            if job.life == actor.life:  # the first word of this death
                actor.life += 1
                actor.state = "starting"  # Ray restarts it; ready says when it is back (or gone)
                starting[actor.handle.ready.remote()] = actor
                actor.culprit = running
            if job is not actor.culprit:
                queue.appendleft(job)  # it waited behind the page that died: nothing against it
                return
            job.tried.add(actor.index)
            tries = len(job.tried)
            self.tell(f"actor {actor.index} on {actor.node} died under {job.page.name} ({_first_line(exc)})"
                      + ("; trying the page on another actor" if tries < MAX_TRIES else ""))
            if tries >= MAX_TRIES:
                self._failed(job, f"its actor died on {tries} tries")
            else:
                queue.appendleft(job)
            return
        except ray.exceptions.RayTaskError as exc:  # the page's own failure, raised in the actor
            actor.order.remove(job)
            self._failed(job, chapter._page_failure(getattr(exc, "cause", None) or exc))
            return
        actor.order.remove(job)
        for note in notes:
            self.tell(f"actor {actor.index}: {note}")
        for warning in warnings:
            self.tell(f"warning: {job.page.name}: {warning}")
        held = chapter._Held()
        try:
            chapter.keep(self.plan, job.page, final, held)
        except InknhueError as exc:
            self._failed(job, str(exc))
        else:
            self.tally.done.append(job.page.name)
            self.tell(chapter.done_line(job.page, final, time.perf_counter() - job.started, ran) + f" on {node}")
            self.bar.update(1)
        if held.caught:
            raise KeyboardInterrupt

    def _failed(self, job: _Job, reason: str) -> None:
        self.tally.failed.append(job.page.name)
        self.tell(f"failed {job.page.name}: {reason}")
        self.bar.update(1)

    def _show(self, actors: list[_Actor]) -> None:
        minutes = (time.monotonic() - self.first) / 60
        states = {}
        for actor in actors:
            state = ("busy" if actor.order else "free") if actor.state == "ready" else actor.state
            states[state] = states.get(state, 0) + 1
        rate = f"{len(self.tally.done) / minutes:.1f} pages/min, " if minutes > 0 and self.tally.done else ""
        self.bar.set_postfix_str(rate + ", ".join(f"{n} {state}" for state, n in states.items()), refresh=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
