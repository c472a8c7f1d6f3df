"""Loaders: providers, calendar-aware validation, the controller, queue backends and workers."""

from loaders._backfill import check_batch_size, enqueue_backfill, plan_backfill, year_ranges
from loaders._calendar import (
    find_gaps,
    get_calendar,
    is_session,
    latest_closed_session,
    session_checks,
    sessions_between,
)
from loaders._controller import (
    MAX_BATCH,
    EnqueuedJob,
    batches,
    enqueue_daily,
    enqueue_job,
    retry_jobs,
    send_job,
)
from loaders._jobs import JobResult, JobRunner
from loaders._load import LoadResult, load_actions_file, load_file
from loaders._messages import MESSAGE_VERSION, JobMessage
from loaders._preflight import (
    check_controller_ready,
    check_providers,
    check_worker_ready,
    served_providers,
)
from loaders._queue import (
    MAX_MESSAGE_BYTES,
    Message,
    Queue,
    StaleMessageError,
    open_poison_queue,
    open_queue,
)
from loaders._queue_settings import QueueSettings
from loaders._worker import (
    Worker,
    WorkerOptions,
    WorkerStats,
    replay_poisoned,
    run_workers,
)
from loaders.providers import (
    Provider,
    ProviderSettings,
    get_provider,
    max_symbols_per_job,
    provider_names,
    register,
)

__all__ = [
    "MAX_BATCH",
    "MAX_MESSAGE_BYTES",
    "MESSAGE_VERSION",
    "EnqueuedJob",
    "JobMessage",
    "JobResult",
    "JobRunner",
    "LoadResult",
    "Message",
    "Provider",
    "ProviderSettings",
    "Queue",
    "QueueSettings",
    "StaleMessageError",
    "Worker",
    "WorkerOptions",
    "WorkerStats",
    "batches",
    "check_batch_size",
    "check_controller_ready",
    "check_providers",
    "check_worker_ready",
    "enqueue_backfill",
    "enqueue_daily",
    "enqueue_job",
    "find_gaps",
    "get_calendar",
    "get_provider",
    "is_session",
    "latest_closed_session",
    "load_actions_file",
    "load_file",
    "max_symbols_per_job",
    "open_poison_queue",
    "open_queue",
    "plan_backfill",
    "provider_names",
    "register",
    "replay_poisoned",
    "retry_jobs",
    "run_workers",
    "send_job",
    "served_providers",
    "session_checks",
    "sessions_between",
    "year_ranges",
]
