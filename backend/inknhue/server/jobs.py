"""The server's jobs: their states, the queue limit, and which finished ones are kept."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from inknhue_krita import protocol
from inknhue_krita.messages import ColorizeRequest, UpscaleRequest
from inknhue_krita.protocol import ProtocolError, RawImage

from ..page.output import Colorization

#: finished jobs kept for `blend` (their intermediates are a few tens of MB each)
KEEP_FINISHED_JOBS = 8


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


@dataclass
class Job:
    id: str
    client: bytes                   #: the connection that asked: its events go there
    request: ColorizeRequest | UpscaleRequest
    images: dict[str, RawImage]     #: dropped once read
    state: JobState = JobState.QUEUED
    cancel: threading.Event = field(default_factory=threading.Event)
    result: Colorization | None = None  #: (a FlatLayer or page.upscale.Upscaled for those jobs)
    mask: np.ndarray | None = None  #: the selection, as the result's alpha
    error: dict | None = None       #: `code` and `message` of a failed job

    def status(self) -> dict:
        """What `status` tells about this job (how a client whose events were lost learns its end)."""
        info = {"job": self.id, "state": self.state.value, "provider": self.request.provider}
        if self.error:
            info["error"] = self.error
        if self.result is not None:
            info["result"] = {"ratio": self.request.ratio, "timings": self.result.timings, "ran": self.result.ran,
                              "page_size": list(self.result.page_size),
                              "working_size": list(self.result.working_size), "warnings": self.result.warnings}
        return info


class JobTable:
    """Jobs by id, oldest first; at most MAX_QUEUED_JOBS waiting, the last few finished kept."""

    def __init__(self):
        self._jobs: OrderedDict[str, Job] = OrderedDict()

    def __iter__(self):
        return iter(list(self._jobs.values()))

    def waiting(self) -> int:
        return sum(1 for job in self._jobs.values() if not job.state.finished)

    def add(self, job: Job) -> int:
        """Queue a job; returns how many are ahead of it."""
        ahead = self.waiting()
        if ahead >= protocol.MAX_QUEUED_JOBS:
            raise ProtocolError("busy", f"{ahead} jobs are waiting already; cancel some or try again later")
        self._jobs[job.id] = job
        finished = [j.id for j in self._jobs.values() if j.state.finished]
        for job_id in finished[:-KEEP_FINISHED_JOBS] if len(finished) > KEEP_FINISHED_JOBS else []:
            del self._jobs[job_id]
        return ahead

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise ProtocolError("unknown_job", f"no job {protocol.shown(job_id)} (finished jobs are kept "
                                               f"for the last {KEEP_FINISHED_JOBS})")
        return job

    def cancel_all(self) -> None:
        for job in self._jobs.values():
            job.cancel.set()
