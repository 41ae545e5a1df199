"""The only place Cloudflare's v4 envelope ``{result, success, errors, messages}``
is built, for successes and failures alike."""

from __future__ import annotations

from typing import Any

import orjson

from connector_telemetry.errors import ApiError

OK_HEAD = b'{"result":'
OK_TAIL = b',"success":true,"errors":[],"messages":[]}'


def ok(result: Any) -> bytes:
    return OK_HEAD + orjson.dumps(result) + OK_TAIL


def ok_raw(result_json: bytes) -> bytes:
    """Wrap an already serialized ``result`` (the hot path: stored event documents)."""
    return OK_HEAD + result_json + OK_TAIL


def ok_with_messages(result: Any, messages: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"result": result, "success": True, "errors": [], "messages": messages})


def error_body(err: ApiError) -> bytes:
    item: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.chain:
        item["error_chain"] = [{"code": c, "message": m} for c, m in err.chain]
    return orjson.dumps({"result": None, "success": False, "errors": [item], "messages": []})


def ok_with_info(result: Any, result_info: dict[str, Any]) -> bytes:
    """A paged list's envelope (Cloudflare's ``result_info``)."""
    return orjson.dumps(
        {
            "result": result,
            "result_info": result_info,
            "success": True,
            "errors": [],
            "messages": [],
        }
    )
