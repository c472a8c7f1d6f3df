"""Feature flags through the Flagsmith SDK, evaluated locally: never a request per check.

Two modes, chosen by settings:

- **offline** (embedded default): the SDK's offline mode reads a Flagsmith environment
  document from `STOCKDATA_FLAGS_FILE` (the shipped `flags.dev.json` enables every flag).
- **remote** (`STOCKDATA_FLAGSMITH_ENVIRONMENT_KEY`, a server-side `ser.` key): the SDK's
  local evaluation fetches the environment document from
  `<STOCKDATA_FLAGSMITH_API_URL>environment-document/` at start and every
  `STOCKDATA_FLAGS_REFRESH_SECONDS` in a background thread.

`is_enabled` reads a snapshot taken after each successful fetch. When Flagsmith cannot be
reached at start, or no fetch has succeeded for `STOCKDATA_FLAGS_MAX_STALE_SECONDS`, the
configured `STOCKDATA_FLAG_DEFAULTS` answer instead (read endpoints on, SQL off by default).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from flagsmith import Flagsmith
from flagsmith.models import DefaultFlag
from flagsmith.offline_handlers import LocalFileHandler
from pydantic import Field, SecretStr
from urllib3.util.retry import Retry

from stockdata.config import StockdataSettings
from stockdata.errors import ConfigurationError
from stockdata.logs import get_logger

log = get_logger(__name__)

TICKER_API = "ticker_api_enabled"
DELTA_API = "delta_api_enabled"
SQL_API = "sql_api_enabled"
ALL_FLAGS = (TICKER_API, DELTA_API, SQL_API)

#: The environment document shipped for the embedded/dev profile (every flag on).
DEV_FLAGS_FILE = Path(__file__).resolve().parent / "flags.dev.json"
#: Flagsmith's public edge API (the SDK's own default).
FLAGSMITH_EDGE_API_URL = "https://edge.api.flagsmith.com/api/v1/"

FlagsMode = Literal["offline", "remote"]


class FlagSettings(StockdataSettings):
    """Where feature flags come from and what holds when Flagsmith is unreachable."""

    flags_file: Path | None = Field(
        default=DEV_FLAGS_FILE,
        description="A Flagsmith environment document (JSON, as GET /api/v1/environment-document/ "
        "returns it) for offline mode. Ignored when an environment key is set.",
    )
    flagsmith_environment_key: SecretStr | None = Field(
        default=None,
        description="Server-side environment key (ser....): enables remote mode with local "
        "evaluation and periodic refresh.",
    )
    flagsmith_api_url: str = Field(
        default=FLAGSMITH_EDGE_API_URL,
        description="Flagsmith API base URL (self-hosted: https://flagsmith.example/api/v1/).",
    )
    flags_refresh_seconds: float = Field(
        default=60.0, gt=0, description="How often remote mode refetches the environment document."
    )
    flags_max_stale_seconds: float = Field(
        default=600.0,
        gt=0,
        description="With no successful fetch for this long, the defaults answer instead.",
    )
    flags_request_timeout_seconds: int = Field(
        default=5, ge=1, description="Timeout of one request to Flagsmith."
    )
    flag_defaults: dict[str, bool] = Field(
        default_factory=lambda: {TICKER_API: True, DELTA_API: True, SQL_API: False},
        description="Flag values used when Flagsmith is unreachable (and for flags the "
        "document does not define). JSON, e.g. '{\"sql_api_enabled\": false}'.",
    )


def environment_document(
    flags: Mapping[str, bool],
    *,
    api_key: str = "stockdata-dev",
    name: str = "dev",
    updated_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """A Flagsmith environment document with one environment-level state per flag."""
    states = []
    for i, (flag, enabled) in enumerate(sorted(flags.items()), start=1):
        states.append(
            {
                "feature": {"id": i, "name": flag, "type": "STANDARD"},
                "enabled": bool(enabled),
                "django_id": i,
                "feature_state_value": None,
                "featurestate_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"stockdata/{flag}")),
                "multivariate_feature_state_values": [],
            }
        )
    return {
        "id": 1,
        "api_key": api_key,
        "name": name,
        "updated_at": (updated_at or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)).isoformat(),
        "project": {
            "id": 1,
            "name": "stockdata",
            "organisation": {"id": 1, "name": "stockdata", "feature_analytics": False},
            "hide_disabled_flags": False,
            "segments": [],
        },
        "feature_states": states,
        "identity_overrides": [],
    }


class _RecordingFlagsmith(Flagsmith):
    """The SDK client, noting when a fetch of the environment document last succeeded."""

    def __init__(self, *, on_refresh: Any, **kwargs: Any) -> None:
        self._on_refresh = on_refresh
        super().__init__(**kwargs)

    def update_environment(self) -> None:
        before = self._evaluation_context
        super().update_environment()
        # The SDK swaps in a new context object only when a fetch and its parse succeeded.
        if self._evaluation_context is not None and self._evaluation_context is not before:
            self._on_refresh(self.get_environment_flags())


class FeatureFlags:
    """Answers `is_enabled(name)` from memory; see the module docstring for the modes."""

    def __init__(self, settings: FlagSettings) -> None:
        self._settings = settings
        self._defaults = dict(settings.flag_defaults)
        self._lock = threading.Lock()
        self._snapshot: dict[str, bool] | None = None
        self._fetched_at: float | None = None
        self._using_defaults = False
        self._client: Flagsmith | None = None
        key = settings.flagsmith_environment_key
        if key is not None and key.get_secret_value():
            self.mode: FlagsMode = "remote"
            self._start_remote(key.get_secret_value())
        else:
            self.mode = "offline"
            self._start_offline()

    # -- modes ----------------------------------------------------------------------------

    def _start_offline(self) -> None:
        path = self._settings.flags_file
        if path is None:
            log.info("flags_offline_defaults", reason="no STOCKDATA_FLAGS_FILE")
            return
        try:
            handler = LocalFileHandler(str(path))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(
                f"STOCKDATA_FLAGS_FILE {path} is not a readable Flagsmith environment document: "
                f"{type(exc).__name__}"
            ) from exc
        self._client = Flagsmith(offline_mode=True, offline_handler=handler)
        self._store(self._client.get_environment_flags())
        log.info("flags_offline", file=str(path), flags=self._snapshot)

    def _start_remote(self, key: str) -> None:
        if not key.startswith("ser."):
            raise ConfigurationError(
                "STOCKDATA_FLAGSMITH_ENVIRONMENT_KEY must be a server-side key (ser....): local "
                "evaluation needs it"
            )
        defaults = self._defaults
        self._client = _RecordingFlagsmith(
            on_refresh=self._store,
            environment_key=key,
            api_url=self._settings.flagsmith_api_url,
            enable_local_evaluation=True,
            environment_refresh_interval_seconds=self._settings.flags_refresh_seconds,
            request_timeout_seconds=self._settings.flags_request_timeout_seconds,
            retries=Retry(total=1, backoff_factor=0.1),
            default_flag_handler=lambda name: DefaultFlag(
                enabled=defaults.get(name, False), value=None
            ),
        )
        log.info(
            "flags_remote",
            refresh_seconds=self._settings.flags_refresh_seconds,
            reachable=self._snapshot is not None,
        )

    def _store(self, flags: Any) -> None:
        snapshot = {flag.feature_name: bool(flag.enabled) for flag in flags.all_flags()}
        with self._lock:
            changed = snapshot != self._snapshot
            self._snapshot = snapshot
            self._fetched_at = time.monotonic()
            recovered = self._using_defaults
            self._using_defaults = False
        if changed or recovered:
            log.info("flags_refreshed", flags=snapshot)

    # -- reads ----------------------------------------------------------------------------

    def _current(self) -> dict[str, bool] | None:
        with self._lock:
            snapshot, fetched_at = self._snapshot, self._fetched_at
            if snapshot is None or self.mode == "offline":
                return snapshot
            assert fetched_at is not None
            if time.monotonic() - fetched_at <= self._settings.flags_max_stale_seconds:
                return snapshot
            if not self._using_defaults:
                self._using_defaults = True
                log.warning(
                    "flags_stale_using_defaults",
                    max_stale_seconds=self._settings.flags_max_stale_seconds,
                    defaults=self._defaults,
                )
            return None

    def is_enabled(self, name: str) -> bool:
        """Whether flag `name` is on; from memory, never a network request."""
        snapshot = self._current()
        if snapshot is not None and name in snapshot:
            return snapshot[name]
        return self._defaults.get(name, False)

    @property
    def source(self) -> Literal["document", "defaults"]:
        """Where answers come from right now (for health and logs)."""
        return "document" if self._current() is not None else "defaults"

    def snapshot(self) -> dict[str, bool]:
        """Every known flag's current value (document over defaults)."""
        return {name: self.is_enabled(name) for name in sorted({*ALL_FLAGS, *self._defaults})}

    def close(self) -> None:
        """Stop the background refresh (remote mode)."""
        client = self._client
        poller = getattr(client, "environment_data_polling_manager_thread", None)
        if poller is not None:
            poller.stop()
            poller.join(timeout=5)


def build_flags(settings: FlagSettings) -> FeatureFlags:
    """Feature flags for these settings (offline document or remote local evaluation)."""
    return FeatureFlags(settings)
