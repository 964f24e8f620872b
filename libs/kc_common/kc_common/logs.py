"""Log lines as JSON (``python-json-logger``) or as readable text, chosen by ``LOG_FORMAT``.

Every process logs one JSON object a line when ``LOG_FORMAT=json`` (production: the
collector parses them), readable text otherwise (``make run``). A JSON line carries
``timestamp`` (UTC, ISO 8601), ``level``, ``service``, ``logger``, ``message``,
``correlation_id`` (inside a worker or request), ``customer_id`` (where the worker knows
its customer) and ``exc_info`` (a traceback), plus any ``extra`` fields of the call.

The services and the gateway choose the formatter in their config.yaml ``LOGGING``
section (``formatter: ${LOG_FORMAT:text}``, the ``correlation`` filter of
:class:`kc_common.context.CorrelationFilter` fills the ids); the web front end calls
:func:`configure`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

FORMATS = ("text", "json")


def text_format(service: str) -> str:
    return f"%(asctime)s %(levelname)-7s {service} %(name)s [%(correlation_id)s] %(message)s"


class JsonFormatter(_JsonFormatter):
    """One JSON object per record with the service's name in every line."""

    def __init__(self, service: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", True)
        kwargs.setdefault("static_fields", {"service": service} if service else {})
        super().__init__("%(levelname)s %(name)s %(message)s", **kwargs)

    def process_log_record(self, log_record: dict[str, Any]) -> dict[str, Any]:
        if log_record.get("correlation_id") == "-":  # outside any worker: no id, not "-"
            del log_record["correlation_id"]
        return super().process_log_record(log_record)


def lean_records() -> None:
    """Leave out of every log record what no format of ours shows (the logging HOWTO's
    "Optimization"): the caller's file and line (a stack walk per record), thread, process
    and multiprocessing names (an eventlet green-thread lookup per record). A gateway
    writes an access line per request: this makes each about a fifth cheaper. Called by
    :class:`kc_common.context.CorrelationFilter` (every process's logging configuration)."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def log_format(value: Any = None) -> str:
    """``text`` or ``json`` (from ``LOG_FORMAT``); anything else is refused at start."""
    value = (value if value is not None else os.environ.get("LOG_FORMAT") or "text").strip().lower()
    if value not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {value!r}")
    return value


def configure(service: str, level: str | int | None = None, fmt: str | None = None,
              stream: Any = None) -> logging.Handler:
    """Root logging for a process outside nameko (the web front end)."""
    from kc_common.context import CorrelationFilter
    handler = logging.StreamHandler(stream)
    if log_format(fmt) == "json":
        handler.setFormatter(JsonFormatter(service=service))
    else:
        handler.setFormatter(logging.Formatter(text_format(service)))
    handler.addFilter(CorrelationFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level or os.environ.get("LOG_LEVEL", "INFO"))
    return handler
