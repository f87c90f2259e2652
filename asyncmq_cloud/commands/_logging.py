"""Logging of ``asyncmq-cloud worker``: one handler on stderr, quiet SDKs, text or JSON lines.

AsyncMQ 0.10.1 configures logging lazily: its first log call runs ``setup_logging()``
with the default ``StandardLoggingConfig``, whose level is DEBUG, and applies it to the
*root* logger (``dictConfig``) — every SDK's debug lines then reach the output (a Kafka
worker printed ~4 KB per job). :func:`configure_logging` binds AsyncMQ's logger proxy to
the plain ``asyncmq`` logger first, so that setup never runs and the root logger keeps
the level given here.

Secrets: every line (message and traceback) goes through :func:`scrub`, which masks
the password of ``scheme://user:password@host`` URLs and secret query values.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any, cast

#: Loggers of the SDKs and of asyncio, kept at WARNING (their INFO/DEBUG lines are per request).
QUIET_LOGGERS = ("botocore", "aiobotocore", "aiokafka", "urllib3", "asyncio")
#: ``--log-level`` choices.
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: ``--log-format`` choices.
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: The password runs to the ``@``: an unencoded ``/`` in it (``redis://u:pa/ss@h``) is masked too.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][\w+.-]*://[^\s:/@]*:)[^\s@]+@")
_SECRET_QUERY = re.compile(
    r"(?i)(?P<head>[?&;](?:password|passwd|pass|secret|token|auth|key|sasl_password)=)[^&\s'\"]+"
)


def scrub(text: str) -> str:
    """``text`` with URL passwords and secret query values replaced by ``***``.

    Args:
        text: a formatted log message or traceback.
    """
    return _SECRET_QUERY.sub(r"\g<head>***", _URL_PASSWORD.sub(r"\g<head>***@", text))


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT`` lines (traceback below the line), scrubbed."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (UTC, ISO 8601, ms), ``level``, ``logger``, ``message``,
    and ``exc`` (the formatted traceback) when the record carries one; scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        if record.exc_info:
            entry["exc"] = scrub(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exc"] = scrub(record.exc_text)
        return json.dumps(entry, ensure_ascii=False, default=str)


def neutralise_asyncmq_logging() -> None:
    """Bind AsyncMQ's logger proxy to the ``asyncmq`` logger, so its lazy DEBUG setup never runs."""
    from asyncmq.logging import logger as asyncmq_logger

    cast(Any, asyncmq_logger).bind_logger(logging.getLogger("asyncmq"))


def configure_logging(level: str = "INFO", fmt: str = "text", stream: IO[str] | None = None) -> logging.Handler:
    """Replace the root logger's handlers by one on ``stream`` and set the levels.

    Args:
        level: the root logger's level (one of ``LEVELS``, any case).
        fmt: ``text`` or ``json`` (see :class:`JsonFormatter`).
        stream: where lines go (default ``sys.stderr``).

    Returns:
        The handler installed on the root logger.
    """
    name = level.upper()
    if name not in LEVELS or fmt not in FORMATS:
        raise ValueError(f"log level {level!r} / format {fmt!r}: choose from {LEVELS} / {FORMATS}")
    neutralise_asyncmq_logging()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(name)
    quiet = max(logging.WARNING, logging.getLevelNamesMapping()[name])
    for logger_name in QUIET_LOGGERS:
        logging.getLogger(logger_name).setLevel(quiet)
    return handler
