"""The dashboard's files as HTTP serves them (issue 9): the page at ``/``, assets under
``/assets/<version>/``, from the installed package; caching, compression and the security
headers. The page itself is driven in a browser by ``tests/browser``."""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from pathlib import Path

import httpx

from support import LiveServer, assert_error

STATIC = resources.files("connector_telemetry.web") / "static"
VENDOR_MD = Path(str(resources.files("connector_telemetry.web") / "VENDOR.md"))


def assets(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/assets/[^"]+)"', page)


def test_page_and_assets(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as http:
        r = http.get("/")
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        csp = r.headers["content-security-policy"]
        for rule in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"):
            assert rule in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["cache-control"] == "no-cache"
        assert '<meta name="ctel-api" content="/client/v4">' in r.text
        # No inline script or style, nothing from another host.
        assert not re.search(r"<script(?![^>]*\bsrc=)", r.text)
        assert "<style" not in r.text and " style=" not in r.text
        assert "http://" not in r.text and "https://" not in r.text
        # Revalidation: 304 with the ETag.
        again = http.get("/", headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304 and again.content == b""

        found = assets(r.text)
        assert len(found) >= 4
        version = found[0].split("/")[2]
        for url in found:
            a = http.get(url, headers={"Accept-Encoding": "gzip"})
            assert a.status_code == 200, url
            assert a.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert a.headers["x-content-type-options"] == "nosniff" and a.headers["etag"]
            name = url.split("/", 3)[3]
            assert a.content == (STATIC / name).read_bytes()  # httpx decoded the gzip
        js = http.get(f"/assets/{version}/js/app.js", headers={"Accept-Encoding": "gzip"})
        assert js.headers["content-type"] == "text/javascript; charset=utf-8"
        assert js.headers["content-encoding"] == "gzip"
        raw = http.get(f"/assets/{version}/js/app.js", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in raw.headers
        assert int(js.headers["content-length"]) < len(raw.content)
        # Another release's URL still answers, but is not kept for good.
        other = http.get("/assets/0000000000000000/js/app.js")
        assert other.status_code == 200 and other.headers["cache-control"] == "no-cache"
        head = http.head("/")
        assert head.status_code == 200 and head.content == b""


def test_no_other_paths(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as http:
        assert_error(http.get("/assets/x/nope.js"), 404, 1404, "no such file")
        assert_error(http.get("/assets/x/../../../pyproject.toml"), 404, 7000)  # (/pyproject.toml)
        assert_error(http.get("/assets/x/%2E%2E/%2E%2E/pyproject.toml"), 404, 1404)
        assert_error(http.get("/favicon.ico"), 404, 7000)
        not_allowed = http.post("/", json={})
        assert_error(not_allowed, 405, 10405)
        assert not_allowed.headers["allow"] == "GET"
        assert not_allowed.headers["x-content-type-options"] == "nosniff"


def test_vendored_files_are_the_recorded_release() -> None:
    """web/VENDOR.md records each vendored file's digest; the committed bytes match it."""
    table = re.findall(r"\| `([^`]+)` \|[^\n]*\| `([0-9a-f]{64})` \|", VENDOR_MD.read_text())
    assert {name for name, _ in table} == {
        "uPlot.iife.min.js",
        "uPlot.min.css",
        "uPlot.LICENSE.txt",
    }
    for name, digest in table:
        body = (STATIC / "vendor" / name).read_bytes()
        assert hashlib.sha256(body).hexdigest() == digest, name


def test_no_markup_from_strings() -> None:
    """The scripts never parse strings as HTML (the browser tests prove hostile data shows
    as text; this keeps the ways it could go wrong out of the source)."""
    for entry in (STATIC / "js").iterdir():
        source = entry.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in source, f"{entry.name} uses {sink}"
        assert "new Function" not in source
