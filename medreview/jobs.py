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
from sqlalchemy import select, update
from sqlalchemy.orm import Session

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
    "job_numbers",
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
# How long a stopping worker (SIGTERM) waits for its running job to notice and end; a training
# run checks after every batch. Whatever still runs then is marked failed and abandoned.
WORKER_STOP_SECONDS = 15.0
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
# Set when the worker in this process is stopping: running jobs see should_stop() turn True.
_worker_stopping = threading.Event()
# Jobs executing in this process right now, so a stopping worker can mark what it abandons.
_running_here: set[int] = set()


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
        _finish(store, job_id, "failed", error=f"could not reach the job queue: {error}", expected=("queued",))
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


def job_numbers(store: Store, kind: str) -> dict[int, int]:
    """Job id -> the job's number among the jobs of ``kind``: 1, 2, 3... in the order submitted.
    Job ids are shared by every kind, so one kind's ids skip (training runs 1 and 3, with a
    prediction job between): people count a kind's jobs by these numbers ("run 2")."""
    with store.db.read() as session:
        job_ids = session.scalars(select(Job.id).where(Job.kind == kind).order_by(Job.id))
        return {int(job_id): number for number, job_id in enumerate(job_ids, start=1)}


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
        session.flush()
        # Conditional, so a worker that took the job since the read above keeps it "running"
        # (the flag set above stops it within a batch) instead of being overwritten.
        _transition(
            session, job_id, ("queued",), "cancelled", finished_at=utcnow(), error="cancelled before it started"
        )


def reap_orphans(store: Store) -> int:
    """Mark running jobs whose worker stopped sending heartbeats as failed."""
    cutoff = utcnow() - HEARTBEAT_TIMEOUT
    # Pages poll this every few seconds: look first with a read, take the write lock only when a
    # running job is there to check (uploads should not queue behind polling).
    with store.db.read() as session:
        if session.scalar(select(Job.id).where(Job.status == "running").limit(1)) is None:
            return 0
    message = (
        "the worker process stopped while running this job (no heartbeat for "
        f"{int(HEARTBEAT_TIMEOUT.total_seconds())} s); start it again and resubmit"
    )
    with store.db.write() as session:
        stale = session.execute(select(Job.id, Job.heartbeat_at, Job.started_at).where(Job.status == "running")).all()
        count = 0
        for job_id, heartbeat_at, started_at in stale:
            beat = heartbeat_at or started_at
            if beat is None or as_utc(beat) >= cutoff:
                continue
            # Only if the job is still running with the very heartbeat read above: on PostgreSQL
            # the worker may have finished it, or beaten, since the SELECT.
            same_beat = Job.heartbeat_at.is_(None) if heartbeat_at is None else Job.heartbeat_at == heartbeat_at
            if _transition(session, job_id, ("running",), "failed", same_beat, finished_at=utcnow(), error=message):
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
        """Whether the job should end now: a user cancelled it, or its worker is stopping."""
        now = time.monotonic()
        if not self._cancelled and now - self._checked_at >= 1.0:
            self._checked_at = now
            with self.store.db.read() as session:
                self._cancelled = bool(session.scalar(select(Job.cancel_requested).where(Job.id == self.job_id)))
        return self._cancelled or _worker_stopping.is_set()

    @property
    def cancelled_by_user(self) -> bool:
        return self._cancelled


Runner = Callable[[JobContext], dict[str, Any]]


def _transition(
    session: Session, job_id: int, expected: tuple[str, ...], status: str, *conditions: Any, **values: Any
) -> bool:
    """Set the job's status (and ``values``) only if its status is one of ``expected``; whether it
    was. One conditional UPDATE, so two writers (worker, reaper, a user cancelling) can never
    both win: the row is re-checked under its lock on PostgreSQL, and SQLite serialises writers."""
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.status.in_(expected), *conditions)
        .values(status=status, **values)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount == 1


def _finish(
    store: Store,
    job_id: int,
    status: str,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    expected: tuple[str, ...] = ("running",),
) -> str:
    """End a job that is still in one of the ``expected`` statuses; returns the status the job
    has afterwards. A job that already ended (the reaper marked it failed while its worker was
    merely slow) keeps its status and this late outcome is dropped."""
    values: dict[str, Any] = {"finished_at": utcnow(), "error": error}
    if result is not None:
        values["result"] = result
    with store.db.write() as session:
        if _transition(session, job_id, expected, status, **values):
            return status
        current = session.scalar(select(Job.status).where(Job.id == job_id))
    log.warning(
        "job %s is already %s; its late outcome (%s%s) is dropped",
        job_id,
        current or "deleted",
        status,
        f": {error}" if error else "",
    )
    return current or "missing"


def _failure(job_id: int, kind: str, error: Exception, context: JobContext) -> tuple[str, str]:
    """The final status and the message for the user of a job whose runner raised ``error``."""
    try:
        if isinstance(error, JobCancelled) and not context.cancelled_by_user and _worker_stopping.is_set():
            return "failed", _WORKER_STOPPED
        if isinstance(error, JobCancelled):
            return "cancelled", "cancelled by the user"
        if isinstance(error, ImportError):
            # A runner whose module (TensorFlow, typically) cannot be imported in this worker.
            log.exception("job %s could not start", job_id)
            return "failed", f"the {kind} job could not start: {type(error).__name__}: {error}"
        if isinstance(error, MedreviewError):
            return "failed", str(error)
        log.exception("job %s failed", job_id)
        return "failed", f"unexpected error: {type(error).__name__}: {error}"
    except Exception:
        # Building the message failed (an exception whose __str__ raises, say): the job must
        # still end with a reason rather than stay "running" until the reaper finds it.
        log.warning("job %s failed and its error could not be described", job_id, exc_info=True)
        return "failed", f"unexpected error: {_type_name(error)} (its message could not be read)"


def _type_name(error: BaseException) -> str:
    try:
        return type(error).__name__
    except Exception:
        return "an exception"


def _describe(error: BaseException) -> str:
    """``"<type>: <message>"``, or only the type when the message cannot be built."""
    try:
        return f"{type(error).__name__}: {error}"
    except Exception:
        return _type_name(error)


def execute_job(store: Store, job_id: int, runners: Mapping[str, Runner]) -> str:
    """Run one job to the end in this process with the runner of its kind; returns its final
    status. Never raises for a job's own failure: the reason is written on the job for the user
    to read (a kind this worker has no runner for is such a failure). A job that was cancelled,
    taken by another worker or marked failed meanwhile keeps that status."""
    with store.db.write() as session:
        now = utcnow()
        started = _transition(
            session, job_id, ("queued",), "running", started_at=now, heartbeat_at=now, worker_pid=os.getpid()
        )
        job = session.get(Job, job_id)
        if job is None:
            log.warning("job %s vanished before it ran", job_id)
            return "missing"
        if not started:
            return job.status  # cancelled while queued, or already taken
        kind = job.kind

    context = JobContext(store, job_id)
    _running_here.add(job_id)
    stop_beating = threading.Event()
    beater = threading.Thread(target=_beat, args=(store, job_id, stop_beating), daemon=True)
    beater.start()
    try:
        try:
            runner = runners.get(kind)
            if runner is None:
                available = ", ".join(sorted(runners)) or "none"
                raise MedreviewError(f"unknown job kind '{kind}': this worker runs {available}")
            result = runner(context)
        finally:
            stop_beating.set()
            beater.join(timeout=10)
    except Exception as error:
        status, message = _failure(job_id, kind, error, context)
        return _finish(store, job_id, status, error=message)
    except BaseException as error:
        # The worker itself is being stopped (KeyboardInterrupt, SystemExit): say so on the job at
        # once instead of leaving it "running" until the reaper notices, then let the stop go on.
        _finish_quietly(store, job_id, f"{_WORKER_STOPPED} ({_type_name(error)})")
        raise
    else:
        try:
            return _finish(store, job_id, "succeeded", result=result)
        except Exception as error:
            # A result the database cannot take (not JSON, say) must not leave the job "running".
            log.exception("job %s finished but its result could not be saved", job_id)
            cause = getattr(error, "orig", None) or error  # SQLAlchemy wraps the serialiser's error
            return _finish(
                store, job_id, "failed", error=f"the job finished but its result could not be saved: {_describe(cause)}"
            )
    finally:
        _running_here.discard(job_id)


_WORKER_STOPPED = "the worker was stopped while running this job; submit it again"


def _finish_quietly(store: Store, job_id: int, message: str) -> None:
    try:
        _finish(store, job_id, "failed", error=message)
    except Exception:
        log.warning("could not mark job %s failed", job_id, exc_info=True)


def _beat(store: Store, job_id: int, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_INTERVAL):
        try:
            with store.db.write() as session:
                # Only a running job beats: one the reaper failed must stay stale.
                still_running = session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == "running")
                    .values(heartbeat_at=utcnow())
                    .execution_options(synchronize_session=False)
                ).rowcount
            if not still_running:
                return
        except Exception:  # a busy database must not kill the job; the next beat retries
            log.warning("heartbeat for job %s failed", job_id, exc_info=True)


# How often the worker sweeps files no row names (left by a crash between file and row).
ORPHAN_SWEEP_INTERVAL = 15 * 60.0  # seconds


def _stamp_worker(store: Store, stop: threading.Event) -> None:
    """Stamp the worker's liveness every few seconds, and sweep orphaned files every
    :data:`ORPHAN_SWEEP_INTERVAL` (at start too): not only at start, since a worker runs for weeks."""
    next_sweep = 0.0
    while not stop.is_set():
        if time.monotonic() >= next_sweep:
            next_sweep = time.monotonic() + ORPHAN_SWEEP_INTERVAL
            try:
                store.collect_orphans()
            except Exception:
                log.warning("could not sweep orphaned files", exc_info=True)
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
    executing each job with the runner of its kind.

    Signals are huey's: SIGINT stops after the running job ends, SIGTERM stops now and SIGHUP
    restarts the process. On SIGTERM the running job is asked to stop (``should_stop()``) and
    given :data:`WORKER_STOP_SECONDS`; a job still running then is marked failed. Either way the
    worker's liveness stamp is removed before the process ends.
    """
    from huey.consumer import Consumer

    _worker_runners.clear()
    _worker_runners.update(runners)
    _worker_stopping.clear()
    settings = settings or get_settings()
    store = Store.open(settings)
    stop_stamping = threading.Event()
    stamper = threading.Thread(target=_stamp_worker, args=(store, stop_stamping), daemon=True)
    consumer = None
    try:
        reap_orphans(store)
        queue, _ = _queue(settings)
        stamper.start()
        consumer = Consumer(queue, workers=1, worker_type="thread", check_worker_health=True)
        consumer.run()
    finally:
        _stop_worker(store, consumer, stamper, stop_stamping)


def _stop_worker(store: Store, consumer: Any, stamper: threading.Thread, stop_stamping: threading.Event) -> None:
    """Stop the job running in this process (if any) and remove the liveness stamp. Each step
    runs even if the one before failed: a stamp left behind makes `train --wait` wait for a
    worker that is gone."""
    _worker_stopping.set()
    try:
        # huey's worker threads are daemons: they would die mid-job at exit. Give the job time
        # to see should_stop() and end with a reason written on it.
        deadline = time.monotonic() + WORKER_STOP_SECONDS
        for _, thread in getattr(consumer, "worker_threads", []):
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for job_id in list(_running_here):
            _finish_quietly(store, job_id, _WORKER_STOPPED)
    except Exception:
        log.warning("could not stop the running job cleanly", exc_info=True)
    finally:
        stop_stamping.set()
        if stamper.is_alive():
            stamper.join(timeout=HEARTBEAT_INTERVAL)  # so it cannot stamp again after the removal
        # Say we are gone at once, so `train --wait` does not wait on a worker that left.
        with store.db.write() as session:
            row = session.get(Setting, "worker_seen_at")
            if row is not None:
                session.delete(row)
