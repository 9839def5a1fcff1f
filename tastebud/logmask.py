"""No PII in log lines: a logging.Filter that masks messages and tracebacks, and the error log.

An exception message can echo user text (a malformed review row, a chat question a
tool choked on), and a traceback carries the message. `MaskPII` rewrites a record
in place before any handler formats it: the message (msg % args) and the formatted
exception and stack text go through `pii.mask`. Because the record itself is
rewritten, every handler that sees it after (the error log, the root logger's,
pytest's caplog) gets the masked text.

`open_error_log(home)` puts WARNING and above from the `tastebud.*` loggers in
TASTEBUD_HOME/logs/errors.log through the filter. The access log
(tastebud/api/access.py) holds no free text: its path is masked where it is built.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from tastebud import pii

ERROR_LOGGER = "tastebud"
_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"
_TRACEBACKS = logging.Formatter()


class MaskPII(logging.Filter):
    """Masks a record's message, exception text and stack text in place (once)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "pii_masked", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what was logged, masked
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = pii.mask(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = pii.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = pii.mask(record.stack_info)
        record.pii_masked = True
        return True


def open_error_log(home: Path) -> logging.Logger:
    """TASTEBUD_HOME/logs/errors.log for tastebud's WARNING+ records, masked; with no
    root handler (uvicorn configures only its own loggers) they go to stderr too,
    masked, where Python's last-resort handler used to print them unmasked."""
    path = Path(home) / "logs" / "errors.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(ERROR_LOGGER)
    target = str(path.resolve())
    ours = [h for h in logger.handlers if getattr(h, "tastebud_error_log", False)]
    if any(getattr(h, "baseFilename", None) == target for h in ours):
        return logger
    for h in ours:
        logger.removeHandler(h)
        h.close()
    handlers: list[logging.Handler] = [logging.FileHandler(target, encoding="utf-8")]
    if not logging.getLogger().handlers:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler.addFilter(MaskPII())
        handler.tastebud_error_log = True
        logger.addHandler(handler)
    return logger
