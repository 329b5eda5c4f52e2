"""Logging set-up for the CLI: text lines, or one JSON object per line.

Records carry context fields (``site``, ``device``, ``reader``, ``gateway`` ...) without
each call naming them: :func:`set_process_context` sets fields for the whole process (the
edge's site and device), :func:`bind` sets fields for the current asyncio task and the
tasks and callbacks it starts (each reader's driver runs under ``reader=<id>``). The JSON
format writes them as keys; the text format appends ``[reader=dock]``.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

_task_context: ContextVar[dict[str, str] | None] = ContextVar("tagtrail_log_context", default=None)
_process_context: dict[str, str] = {}


def set_process_context(**fields: str) -> None:
    """Fields every record of this process carries (e.g. ``site``, ``device``)."""
    _process_context.update(fields)


def bind(**fields: str) -> None:
    """Fields the records of the current task (and what it starts) carry."""
    current = _task_context.get() or {}
    _task_context.set({**current, **fields})


class ContextFilter(logging.Filter):
    """Adds the process and task context fields a record does not already have."""

    def filter(self, record: logging.LogRecord) -> bool:
        for fields in (_task_context.get() or {}, _process_context):
            for key, value in fields.items():
                if not hasattr(record, key):
                    setattr(record, key, value)
        return True


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [key=value ...]`` with the context fields."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = [f"{key}={value}" for key, value in vars(record).items() if key in _CONTEXT_KEYS]
        return f"{text} [{' '.join(extra)}]" if extra else text


_CONTEXT_KEYS = ("site", "device", "reader", "gateway")

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields given with ``extra={...}`` are kept."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data)


def setup_logging(level: str, fmt: str = "text") -> None:
    """Configure the root logger to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # one line per HTTP request from the InfluxDB client is noise at INFO
    for noisy in ("httpx", "httpcore", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
