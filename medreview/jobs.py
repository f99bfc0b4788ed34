"""Background jobs: a Job row in the store plus a message on a huey queue.

This module knows no job kinds. A kind is a name and a runner (a callable taking a
:class:`JobContext` and returning the job's result); :mod:`medreview.ml.runners` maps the kinds
the app has to their runners, and the worker is started with that map (``run_worker(runners)``).
Submitting needs only the name, so the Streamlit process never imports a runner.

The queue is SQLite (``<data dir>/queue.db``) by default and Redis when ``MEDREVIEW_REDIS_URL``
is set, so a worker on another (GPU) machine can take jobs. The Streamlit process only ever
*submits* jobs; ``python -m medreview worker`` runs them in its own process, which is where
TensorFlow is imported.

Liveness: while a job runs, a thread in the worker writes ``Job.heartbeat_at`` every few seconds.
A job still "running" whose heartbeat is older than :data:`HEARTBEAT_TIMEOUT` had its worker die
under it; :func:`reap_orphans` marks it failed with a plain message instead of leaving it
"running" for ever. The worker also stamps the ``worker_seen_at`` setting so the UI can tell the
user when no worker is running.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey
from sqlalchemy import select

from medreview.config import Settings, get_settings
from medreview.errors import JobCancelled, MedreviewError, NotFoundError
from medreview.store import LOCAL_USER, Store
from medreview.store.models import Job, Setting, as_utc, utcnow
from medreview.team.audit import record
from medreview.team.roles import Actor, require

__all__ = [
    "HEARTBEAT_TIMEOUT",
    "JobContext",
    "Runner",
    "cancel_job",
    "execute_job",
    "get_job",
    "list_jobs",
    "make_queue",
    "reap_orphans",
    "run_worker",
    "submit_job",
    "worker_alive",
    "worker_last_seen",
]

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 5.0  # seconds
HEARTBEAT_TIMEOUT = dt.timedelta(seconds=90)
ACTIVE_STATUSES = ("queued", "running")
_KIND_PATTERN = re.compile(r"[a-z][a-z0-9_.-]{0,31}")


def make_queue(settings: Settings) -> Huey:
    if settings.redis_url:
        return RedisHuey("medreview", url=settings.redis_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("medreview", filename=str(settings.queue_path))


_queues: dict[tuple[str, str | None], tuple[Huey, Any]] = {}


def _queue(settings: Settings) -> tuple[Huey, Any]:
    """The huey instance for these settings and the registered task wrapper (one per process)."""
    key = (str(settings.queue_path), settings.redis_url)
    if key not in _queues:
        queue = make_queue(settings)
        task = queue.task(name="medreview.execute_job", retries=0)(_execute_job_task)
        _queues[key] = (queue, task)
    return _queues[key]


# The runners of the worker running in this process, set by run_worker.
_worker_runners: dict[str, Runner] = {}


def _execute_job_task(job_id: int) -> None:
    execute_job(Store.open(), job_id, _worker_runners)


# --- submitting and reading ---------------------------------------------------------------------


def submit_job(store: Store, kind: str, params: dict[str, Any], created_by: str = LOCAL_USER) -> int:
    """Record a job and put it on the queue; returns the job id."""
    if not _KIND_PATTERN.fullmatch(kind):
        raise MedreviewError(f"'{kind}' is not a job kind name")
    with store.db.write() as session:
        job = Job(kind=kind, params=params, created_by=created_by, progress={}, result={})
        session.add(job)
        session.flush()
        job_id = job.id
    try:
        _, task = _queue(store.settings)
        task(job_id)
    except Exception as error:  # the queue is down: say so on the job instead of leaving it queued
        _finish(store, job_id, "failed", error=f"could not reach the job queue: {error}")
        raise MedreviewError(f"could not reach the job queue: {error}") from error
    return job_id


def get_job(store: Store, job_id: int) -> Job:
    reap_orphans(store)
    with store.db.read() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFoundError(f"job {job_id} does not exist")
        return job


def list_jobs(store: Store, kind: str | None = None, limit: int = 50) -> list[Job]:
    reap_orphans(store)
    with store.db.read() as session:
        query = select(Job).order_by(Job.id.desc()).limit(limit)
        if kind:
            query = query.where(Job.kind == kind)
        return list(session.scalars(query))


def cancel_job(store: Store, actor: Actor, job_id: int) -> None:
    """Ask a job to stop. A queued job is cancelled at once; a running one stops within a batch."""
    require(actor, "reviewer", "cancel background jobs")
    with store.db.write() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFoundError(f"job {job_id} does not exist")
        if job.status not in ACTIVE_STATUSES:
            raise MedreviewError(f"job {job_id} is already {job.status}")
        job.cancel_requested = True
        record(session, actor.username, "job.cancel", "job", job_id, kind=job.kind, status=job.status)
        if job.status == "queued":
            job.status = "cancelled"
            job.finished_at = utcnow()
            job.error = "cancelled before it started"


def reap_orphans(store: Store) -> int:
    """Mark running jobs whose worker stopped sending heartbeats as failed."""
    cutoff = utcnow() - HEARTBEAT_TIMEOUT
    # Pages poll this every few seconds: look first with a read, take the write lock only when a
    # running job is there to check (uploads should not queue behind polling).
    with store.db.read() as session:
        if session.scalar(select(Job.id).where(Job.status == "running").limit(1)) is None:
            return 0
    with store.db.write() as session:
        stale = session.scalars(select(Job).where(Job.status == "running")).all()
        count = 0
        for job in stale:
            beat = job.heartbeat_at or job.started_at
            if beat is not None and as_utc(beat) < cutoff:
                job.status = "failed"
                job.finished_at = utcnow()
                job.error = (
                    "the worker process stopped while running this job (no heartbeat for "
                    f"{int(HEARTBEAT_TIMEOUT.total_seconds())} s); start it again and resubmit"
                )
                count += 1
        return count


def worker_last_seen(store: Store) -> dt.datetime | None:
    with store.db.read() as session:
        row = session.get(Setting, "worker_seen_at")
        return dt.datetime.fromisoformat(row.value) if row is not None else None


def worker_alive(store: Store) -> bool:
    """Whether a worker stamped its liveness within the last few heartbeats."""
    seen = worker_last_seen(store)
    return seen is not None and (utcnow() - as_utc(seen)).total_seconds() < 3 * HEARTBEAT_INTERVAL


# --- running ------------------------------------------------------------------------------------


class JobContext:
    """What a running job sees: progress reporting and cancellation.

    ``should_stop()`` is called after every training batch, so it reads the database at most
    once a second.
    """

    def __init__(self, store: Store, job_id: int) -> None:
        self.store = store
        self.job_id = job_id
        self._cancelled = False
        self._checked_at = 0.0

    def params(self) -> dict[str, Any]:
        with self.store.db.read() as session:
            return dict(session.get(Job, self.job_id).params)

    def report(self, **progress: Any) -> None:
        """Merge ``progress`` into the job's progress dict (visible to the UI at once)."""
        with self.store.db.write() as session:
            job = session.get(Job, self.job_id)
            job.progress = {**job.progress, **progress}
            job.heartbeat_at = utcnow()

    def should_stop(self) -> bool:
        now = time.monotonic()
        if not self._cancelled and now - self._checked_at >= 1.0:
            self._checked_at = now
            with self.store.db.read() as session:
                self._cancelled = bool(session.scalar(select(Job.cancel_requested).where(Job.id == self.job_id)))
        return self._cancelled


Runner = Callable[[JobContext], dict[str, Any]]


def _finish(
    store: Store, job_id: int, status: str, result: dict[str, Any] | None = None, error: str | None = None
) -> None:
    with store.db.write() as session:
        job = session.get(Job, job_id)
        job.status = status
        job.finished_at = utcnow()
        job.error = error
        if result is not None:
            job.result = result


def execute_job(store: Store, job_id: int, runners: Mapping[str, Runner]) -> str:
    """Run one job to the end in this process with the runner of its kind; returns its final
    status. Never raises for a job's own failure: the reason is written on the job for the user
    to read (a kind this worker has no runner for is such a failure)."""
    with store.db.write() as session:
        job = session.get(Job, job_id)
        if job is None:
            log.warning("job %s vanished before it ran", job_id)
            return "missing"
        if job.status != "queued":
            return job.status  # cancelled while queued, or already taken
        job.status = "running"
        job.started_at = job.heartbeat_at = utcnow()
        job.worker_pid = os.getpid()
        kind = job.kind

    context = JobContext(store, job_id)
    stop_beating = threading.Event()
    beater = threading.Thread(target=_beat, args=(store, job_id, stop_beating), daemon=True)
    beater.start()
    try:
        runner = runners.get(kind)
        if runner is None:
            raise MedreviewError(f"unknown job kind '{kind}': this worker runs {', '.join(sorted(runners)) or 'none'}")
        result = runner(context)
    except Exception as error:
        stop_beating.set()
        if isinstance(error, JobCancelled):
            _finish(store, job_id, "cancelled", error="cancelled by the user")
            return "cancelled"
        if isinstance(error, MedreviewError):
            message = str(error)
        else:
            log.exception("job %s failed", job_id)
            message = f"unexpected error: {type(error).__name__}: {error}"
        _finish(store, job_id, "failed", error=message)
        return "failed"
    finally:
        stop_beating.set()
        beater.join(timeout=10)
    _finish(store, job_id, "succeeded", result=result)
    return "succeeded"


def _beat(store: Store, job_id: int, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_INTERVAL):
        try:
            with store.db.write() as session:
                job = session.get(Job, job_id)
                if job is None or job.status != "running":
                    return
                job.heartbeat_at = utcnow()
        except Exception:  # a busy database must not kill the job; the next beat retries
            log.warning("heartbeat for job %s failed", job_id, exc_info=True)


def _stamp_worker(store: Store, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            with store.db.write() as session:
                row = session.get(Setting, "worker_seen_at")
                now = utcnow().isoformat()
                if row is None:
                    session.add(Setting(key="worker_seen_at", value=now))
                else:
                    row.value = now
        except Exception:
            log.warning("could not record worker liveness", exc_info=True)
        if stop.wait(HEARTBEAT_INTERVAL):
            return


def run_worker(runners: Mapping[str, Runner], settings: Settings | None = None) -> None:
    """Run the huey consumer in this process until interrupted (``python -m medreview worker``),
    executing each job with the runner of its kind."""
    from huey.consumer import Consumer

    _worker_runners.clear()
    _worker_runners.update(runners)
    settings = settings or get_settings()
    store = Store.open(settings)
    store.collect_orphans()
    reap_orphans(store)
    queue, _ = _queue(settings)
    stop = threading.Event()
    threading.Thread(target=_stamp_worker, args=(store, stop), daemon=True).start()
    try:
        Consumer(queue, workers=1, worker_type="thread", check_worker_health=True).run()
    finally:
        stop.set()
        # Say we are gone at once, so `train --wait` does not wait on a worker that left.
        with store.db.write() as session:
            row = session.get(Setting, "worker_seen_at")
            if row is not None:
                session.delete(row)
