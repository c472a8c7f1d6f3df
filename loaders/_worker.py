"""The worker: receive a message, renew it while its job runs (loaders/_jobs.py), then delete,
release or dead-letter it by the outcome."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.engine import Engine

import catalog
import lake
from loaders._jobs import JobReleased, JobRunner, ProviderFactory
from loaders._messages import JobMessage
from loaders._queue import Message, Queue, StaleMessageError
from loaders.providers._base import Provider
from stockdata.backoff import backoff_delay
from stockdata.errors import ConfigurationError, PermanentError, StockDataError, TransientError
from stockdata.logs import get_logger, scrub_text

log = get_logger(__name__)

Outcome = Literal["succeeded", "failed", "retried", "poisoned", "skipped", "released"]
_FINISHED = {catalog.JobStatus.SUCCEEDED, catalog.JobStatus.FAILED, catalog.JobStatus.POISONED}


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How a worker treats its queue."""

    visibility_timeout: float = 300
    renew_every: float = 60
    max_deliveries: int = 5
    backoff_base: float = 5.0
    backoff_max: float = 600.0
    poll_interval: float = 1.0

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> WorkerOptions:
        """From `QueueSettings`."""
        values: dict[str, Any] = {
            "visibility_timeout": settings.queue_visibility_timeout_seconds,
            "renew_every": settings.queue_renew_every_seconds,
            "max_deliveries": settings.queue_max_deliveries,
            "backoff_base": settings.queue_backoff_base_seconds,
            "backoff_max": settings.queue_backoff_max_seconds,
            "poll_interval": settings.queue_poll_seconds,
        }
        return cls(**(values | overrides))

    def backoff(self, delivery: int, retry_after: float | None = None) -> float:
        """Exponential with jitter (at least half the ceiling), never shorter than the
        provider's Retry-After."""
        return backoff_delay(
            delivery - 1,
            base=self.backoff_base,
            cap=self.backoff_max,
            retry_after=retry_after,
            spread=0.5,
        )


@dataclass(slots=True)
class WorkerStats:
    """Per-outcome counts and rows written by one worker (or a pool)."""

    outcomes: dict[str, int] = field(default_factory=dict)
    rows_written: int = 0
    #: Why the worker stopped itself: a configuration or credential error met on a job
    #: (the job was released for another worker). None when it stopped as asked.
    fatal: str | None = None
    #: Jobs failed or poisoned by this worker, by error code.
    failures: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: Outcome, rows: int = 0) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        self.rows_written += rows

    def failed(self, code: str) -> None:
        self.failures[code] = self.failures.get(code, 0) + 1

    def merge(self, other: WorkerStats) -> None:
        for k, v in other.outcomes.items():
            self.outcomes[k] = self.outcomes.get(k, 0) + v
        for k, v in other.failures.items():
            self.failures[k] = self.failures.get(k, 0) + v
        self.rows_written += other.rows_written
        self.fatal = self.fatal or other.fatal

    @property
    def jobs(self) -> int:
        return sum(self.outcomes.values())


class _Renewer:
    """Extends a held message's visibility every `every` seconds until stopped."""

    def __init__(self, queue: Queue, message: Message, *, timeout: float, every: float) -> None:
        self._queue = queue
        self._timeout = timeout
        self._every = every
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.message = message
        self.lost = False
        self._thread = threading.Thread(target=self._run, name="renewer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            with self._lock:
                if self._stop.is_set():
                    return
                try:
                    self.message = self._queue.renew(self.message, visibility_timeout=self._timeout)
                except StaleMessageError:
                    self.lost = True
                    log.warning("message_lost", message_id=self.message.id)
                    return
                except TransientError as exc:
                    log.warning("renew_failed", message_id=self.message.id, error=str(exc))

    def stop(self) -> Message:
        self._stop.set()
        with self._lock:
            pass
        self._thread.join()
        return self.message


class Worker:
    """Runs jobs from one queue; make one per thread (they share the engine safely)."""

    def __init__(
        self,
        *,
        engine: Engine,
        queue: Queue,
        lake_settings: lake.LakeSettings,
        providers: ProviderFactory,
        options: WorkerOptions | None = None,
        stop: threading.Event | None = None,
        on_job: Callable[[Outcome, int], None] | None = None,
    ) -> None:
        self.engine = engine
        self.queue = queue
        self.lake_settings = lake_settings
        self.options = options or WorkerOptions()
        self.stop = stop or threading.Event()
        self.runner = JobRunner(engine=engine, lake_settings=lake_settings, providers=providers)
        self.on_job = on_job
        self.stats = WorkerStats()

    # -- the loop -------------------------------------------------------------------------

    def run(self, *, until_empty: bool = False, max_jobs: int | None = None) -> WorkerStats:
        """Work until stopped, until `max_jobs` were handled, or (until_empty) the queue is empty.

        Empty means no message at all, hidden ones included: a job released with backoff is
        still waited for."""
        while not self.stop.is_set():
            if max_jobs is not None and self.stats.jobs >= max_jobs:
                break
            got = self.queue.receive(visibility_timeout=self.options.visibility_timeout)
            if not got:
                if until_empty and self.queue.depth() == 0:
                    break
                self.stop.wait(self.options.poll_interval)
                continue
            outcome, rows = self.handle(got[0])
            self.stats.add(outcome, rows)
            if self.on_job is not None:
                self.on_job(outcome, rows)
        return self.stats

    def handle(self, message: Message) -> tuple[Outcome, int]:
        """Run the job a message names and settle the message; returns the outcome and rows."""
        try:
            job_msg = JobMessage.from_json(message.body)
        except PermanentError as exc:
            log.error("bad_message", message_id=message.id, error=exc.message)
            self.queue.dead_letter(message)
            return "poisoned", 0
        job_id = uuid.UUID(job_msg.job_id)
        bound = log.bind(job_id=job_msg.job_id, delivery=message.dequeue_count)
        try:
            with catalog.session_scope(self.engine) as session:
                status = catalog.get_job(session, job_id).status
                if status not in _FINISHED and message.dequeue_count <= self.options.max_deliveries:
                    catalog.mark_job_running(session, job_id)
        except PermanentError as exc:
            bound.error("job_row_missing", error=exc.message)
            self.queue.dead_letter(message)
            return "poisoned", 0
        if status in _FINISHED:
            bound.info("job_already_finished", status=str(status))
            self._settle(message, self.queue.delete)
            return "skipped", 0
        if message.dequeue_count > self.options.max_deliveries:
            return self._poison(job_id, message, "too-many-deliveries", "delivered too often")

        renewer = _Renewer(
            self.queue,
            message,
            timeout=self.options.visibility_timeout,
            every=self.options.renew_every,
        )
        try:
            result = self.runner.run(job_msg, stop=self.stop)
        except JobReleased:
            held = renewer.stop()
            self._set_status(job_id, catalog.JobStatus.QUEUED, "released", "worker stopping")
            self._settle(held, lambda m: self.queue.release(m, delay=0))
            bound.info("job_released")
            return "released", 0
        except ConfigurationError as exc:  # this process is broken, not the job: give it back
            held = renewer.stop()
            delay = self.options.backoff(message.dequeue_count)
            with catalog.session_scope(self.engine) as session:
                catalog.release_job(
                    session, job_id, error_code=exc.code[:64], error=scrub_text(exc.message)
                )
            self._settle(held, lambda m: self.queue.release(m, delay=delay))
            self.stats.fatal = scrub_text(exc.message)
            self.stop.set()
            bound.error("worker_misconfigured", code=exc.code, error=exc.message, retry_in=delay)
            return "released", 0
        except PermanentError as exc:
            held = renewer.stop()
            self._set_status(job_id, catalog.JobStatus.FAILED, exc.code, exc.message)
            self.stats.failed(exc.code)
            self._settle(held, self.queue.delete)
            bound.error("job_failed", code=exc.code, error=exc.message)
            return "failed", 0
        except Exception as exc:  # transient, or a bug: retried, then poisoned
            held = renewer.stop()
            code = exc.code if isinstance(exc, StockDataError) else "unexpected"
            text = (
                exc.message if isinstance(exc, StockDataError) else f"{type(exc).__name__}: {exc}"
            )
            if message.dequeue_count >= self.options.max_deliveries:
                return self._poison(job_id, held, code, text)
            retry_after = exc.retry_after if isinstance(exc, TransientError) else None
            delay = self.options.backoff(message.dequeue_count, retry_after)
            self._set_status(job_id, catalog.JobStatus.QUEUED, code, text)
            self._settle(held, lambda m: self.queue.release(m, delay=delay))
            bound.warning("job_retry", code=code, error=text, retry_in=round(delay, 2))
            return "retried", 0
        held = renewer.stop()
        self._settle(held, self.queue.delete)
        bound.info(
            "job_succeeded",
            rows=result.rows_written,
            rejected=result.rows_rejected,
            version=result.lake_version,
        )
        return "succeeded", result.rows_written

    def _settle(self, message: Message, action: Callable[[Message], None]) -> None:
        try:
            action(message)
        except StaleMessageError as exc:  # someone else holds it now; the job is idempotent
            log.warning("message_settle_stale", message_id=message.id, error=exc.message)

    def _set_status(
        self, job_id: uuid.UUID, status: catalog.JobStatus, code: str, error: str
    ) -> None:
        with catalog.session_scope(self.engine) as session:
            catalog.mark_job_finished_with_error(
                session, job_id, status=status, error_code=code[:64], error=scrub_text(error)
            )

    def _poison(
        self, job_id: uuid.UUID, message: Message, code: str, error: str
    ) -> tuple[Outcome, int]:
        self._set_status(job_id, catalog.JobStatus.POISONED, code, error)
        self.stats.failed(code)
        self._settle(message, self.queue.dead_letter)
        log.error("job_poisoned", job_id=str(job_id), code=code, error=error)
        return "poisoned", 0

    def provider(self, name: str, options: dict[str, Any]) -> Provider:
        """The provider this worker's jobs of `name` with `options` use."""
        return self.runner.provider(name, options)


def run_workers(
    make_worker: Callable[[threading.Event], Worker],
    *,
    concurrency: int = 1,
    until_empty: bool = False,
    max_jobs: int | None = None,
    stop: threading.Event | None = None,
) -> WorkerStats:
    """Run `concurrency` workers in threads sharing one stop event; their stats summed."""
    stop = stop or threading.Event()
    workers = [make_worker(stop) for _ in range(concurrency)]
    if concurrency == 1:
        return workers[0].run(until_empty=until_empty, max_jobs=max_jobs)
    errors: list[BaseException] = []

    def target(w: Worker) -> None:
        try:
            w.run(until_empty=until_empty, max_jobs=max_jobs)
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [
        threading.Thread(target=target, args=(w,), name=f"worker-{i}")
        for i, w in enumerate(workers)
    ]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(0.2)
    except KeyboardInterrupt:
        stop.set()
        for t in threads:
            t.join()
        raise
    if errors:
        raise errors[0]
    total = WorkerStats()
    for w in workers:
        total.merge(w.stats)
    return total


def replay_poisoned(
    poison: Queue, target: Queue, engine: Engine, *, limit: int | None = None
) -> int:
    """Move poisoned messages back to `target` and their jobs back to queued; returns how many."""
    moved = 0
    while limit is None or moved < limit:
        got = poison.receive(visibility_timeout=60)
        if not got:
            break
        msg = got[0]
        try:
            job_id: uuid.UUID | None = uuid.UUID(JobMessage.from_json(msg.body).job_id)
        except PermanentError:
            job_id = None
        if job_id is not None:
            with catalog.session_scope(engine) as session:
                catalog.mark_job_finished_with_error(
                    session,
                    job_id,
                    status=catalog.JobStatus.QUEUED,
                    error_code="replayed",
                    error="replayed from the poison queue",
                )
        target.send(msg.body)
        poison.delete(msg)
        moved += 1
    return moved
