"""Knowledge-base work that outlives its request, done one job at a time on one thread: an
ingest the caller did not wait for, or re-embedding every chunk for a new embedding model. Each
job says how far it got, for the HTTP API and the CLI's progress bar."""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from ..engine.errors import EngineError
from .errors import KbError

log = logging.getLogger("offgrid.kb")

KEPT_JOBS = 200  # finished jobs remembered, the newest


@dataclass
class Job:
    kind: str  # "ingest" or "reembed"
    total: int  # steps: chunks, documents
    owner: str = ""  # who may follow it
    id: str = field(default_factory=lambda: "job-" + uuid.uuid4().hex[:12])
    status: str = "queued"  # queued, running, completed, failed
    done: int = 0
    error: str | None = None
    result: dict = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed")

    def as_dict(self) -> dict:
        return {"id": self.id, "object": "job", "kind": self.kind, "status": self.status,
                "done": self.done, "total": self.total,
                "percent": round(100 * self.done / self.total, 1) if self.total else None,
                "error": self.error, "result": self.result, "created_at": int(self.created_at)}


class Jobs:
    def __init__(self):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    def submit(self, kind: str, total: int, work: Callable[[Job], None], owner: str = "") -> Job:
        """Queue `work(job)`: it updates job.done as it goes and fills job.result; an exception
        it raises fails the job with its message."""
        job = Job(kind, total, owner)
        with self._lock:
            self._jobs[job.id] = job
            finished = [j.id for j in self._jobs.values() if j.finished]
            for old in finished[:max(0, len(finished) - KEPT_JOBS)]:
                del self._jobs[old]
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="kb-jobs", daemon=True)
                self._worker.start()
        self._queue.put((job, work))
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def running(self, kind: str) -> Job | None:
        return next((j for j in self.all() if j.kind == kind and not j.finished), None)

    def _run(self) -> None:
        while True:
            job, work = self._queue.get()
            job.status = "running"
            try:
                work(job)
                job.status = "completed"
            except Exception as error:  # the job's own failure; the worker goes on
                expected = isinstance(error, (KbError, EngineError))
                log.warning("knowledge-base job %s failed: %s", job.id, error,
                            exc_info=not expected)
                job.error, job.status = str(error), "failed"
