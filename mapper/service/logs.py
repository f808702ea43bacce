"""The service's log lines on stderr, as text or JSON, with the event, mapping, step and job they are about."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Final

_EXTRAS: Final = ("event_id", "mapping", "step", "job", "delivery")


class _TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = " ".join(f"{key}={getattr(record, key)}" for key in _EXTRAS if getattr(record, key, None) is not None)
        return f"{text} [{context}]" if context else text


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({key: getattr(record, key) for key in _EXTRAS if getattr(record, key, None) is not None})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(fmt: str = "text", level: str = "INFO") -> None:
    """Log lines to stderr as text or JSON; libraries that log full URLs (tokens!) only from WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("httpx", "httpcore", "gql", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
