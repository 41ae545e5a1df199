"""Request ids and one log line per request: ``RequestLog``.

Every answer carries ``x-request-id``: the client's own when it sent a well-formed one (1 to
128 characters of letters, digits, ``-``, ``_``, ``.``, ``:``; anything else is replaced, so
a log line can never be forged through it), else a new random one. The same id is in the
message of a 500 (``internal error, request id ...``) and in the request's log line.

With ``log_format = json`` each request is logged as one JSON object on one line (time,
level, request id, method, route, status, duration, account and connector ids, bytes in and
out); never a credential, a query string or a body. With ``text`` (the default) requests are
not logged one by one, as before; other messages are lines of text (or JSON objects, in
``json`` mode: ``JsonFormatter`` formats every record of the ``connector_telemetry`` logger).
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from typing import Any

#: The id of the request being answered (read by the dispatcher's error rendering).
REQUEST_ID: ContextVar[str] = ContextVar("REQUEST_ID", default="")
_WELL_FORMED = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")

access = logging.getLogger("connector_telemetry.access")


#: Ids made here: this process's random prefix and a counter (unique without a system call
#: per request; ``uuid4`` would read the kernel's random source every time).
_PREFIX = uuid.uuid4().hex[:16]
_counter = itertools.count(1)


def request_id(incoming: str | None) -> str:
    if incoming is not None and _WELL_FORMED.match(incoming):
        return incoming
    return f"{_PREFIX}{next(_counter):016x}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "ctel", None)
        if fields:
            line.update(fields)
        else:
            line["message"] = record.getMessage()
            rid = REQUEST_ID.get()
            if rid:
                line["request_id"] = rid
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, separators=(",", ":"))


def configure(log_format: str) -> None:
    """In each server process: in ``json`` mode, every record of ``connector_telemetry``
    (requests included) goes to stderr as one JSON object per line."""
    if log_format != "json":
        return
    logger = logging.getLogger("connector_telemetry")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.handlers[:] = [handler]
    logger.propagate = False
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


class RequestLog:
    def __init__(self, log_format: str):
        self.enabled = log_format == "json"

    def done(
        self,
        rid: str,
        method: str,
        route: str,
        status: int,
        started: float,
        params: dict[str, Any] | None,
        bytes_in: int,
        bytes_out: int,
    ) -> None:
        if not self.enabled:
            return
        fields = {
            "request_id": rid,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "account_id": (params or {}).get("account_id"),
            "connector_id": (params or {}).get("connector_id"),
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
        }
        level = logging.ERROR if status >= 500 else logging.INFO
        access.log(level, "request", extra={"ctel": fields})
