"""The service's log lines on stderr, as text or JSON, with the event, mapping, step and job they are about.

Every line is masked last, with the secrets of the mappings in force and the webhook secrets (`hide`): the
runner masks what it reports, and this catches whatever else reaches a log (a library's message, a traceback).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Final

from mapper.run.masking import Masker

_EXTRAS: Final = ("event_id", "mapping", "step", "job", "delivery")


class _TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.masker = Masker()

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = " ".join(f"{key}={getattr(record, key)}" for key in _EXTRAS if getattr(record, key, None) is not None)
        return self.masker.text(f"{text} [{context}]" if context else text)


class _JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self.masker = Masker()

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
        return json.dumps(self.masker.value(line), ensure_ascii=False, default=str)


def hide(masker: Masker) -> None:
    """Mask every log line the service writes from now on with `masker`."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, _TextFormatter | _JsonFormatter):
            handler.formatter.masker = masker


def configure_logging(fmt: str = "text", level: str = "INFO") -> None:
    """Log lines to stderr as text or JSON; libraries that log full URLs (tokens!) only from WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("httpx", "httpcore", "gql", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
