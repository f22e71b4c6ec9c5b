"""``kopter api``: the app under uvicorn, logging JSON lines (one per request from
``access.RequestContext``; uvicorn's own access log, which would repeat them, is off)."""

from __future__ import annotations

import json
import logging
import signal
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import uvicorn

from kopter.api.app import create_app
from kopter.settings import Settings
from kopter.tables import bind


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": JsonFormatter}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stdout",
        }
    },
    "loggers": {
        name: {"handlers": ["stdout"], "level": "INFO", "propagate": False}
        for name in ("uvicorn", "uvicorn.error", "kopter")
    },
}


def _stopped(signum: int, _: FrameType | None) -> None:
    raise SystemExit(0)


def serve(settings: Settings, host: str, port: int) -> None:
    app = create_app(settings)  # refuses a missing or unsafe setting before anything listens
    bind(settings)  # the deployment whose tables this process serves
    # uvicorn shuts down gracefully on SIGTERM, then raises it again under the handler that was
    # there before: this one, so a stop that went as asked exits 0 (an orchestrator's stop,
    # systemd's) instead of dying of the signal.
    signal.signal(signal.SIGTERM, _stopped)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=LOG_CONFIG,
        access_log=False,
        server_header=False,
    )
