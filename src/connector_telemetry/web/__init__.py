"""The dashboard's files: ``/`` (the page) and ``/assets/<version>/...`` (scripts, styles,
the vendored chart library), read once from the package (``web/static``) at start.

The page is a client of the public API it is served beside (under the API prefix); this
package serves files only and never imports ``store``. Every asset URL carries a digest
of all the files (``version``), so assets are cached for good (``immutable``) while the
page itself is revalidated on every load (``no-cache`` + ETag): a new release is picked
up at the next load, and a node serving the same release answers with the same bytes.
Files are gzipped once at start, for clients that accept it.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from connector_telemetry.api.request import Request
from connector_telemetry.api.route import Prepared, Response, Route
from connector_telemetry.errors import NotFound

#: No inline script or style, nothing from another origin, never framed.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
]
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}
ASSETS = "/assets/"  # then <version>/<file>
PAGE_PATHS = frozenset(("/", "/index.html"))


@dataclass(frozen=True)
class File:
    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: str


def _file(name: str, body: bytes) -> File:
    suffix = name[name.rfind(".") :]
    packed = gzip.compress(body, 9, mtime=0) if len(body) > 512 else None
    if packed is not None and len(packed) >= len(body):
        packed = None
    etag = '"' + hashlib.sha256(body).hexdigest()[:24] + '"'
    return File(body, packed, TYPES.get(suffix, "application/octet-stream"), etag)


def _walk(folder: Traversable, prefix: str = "") -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for entry in folder.iterdir():
        if entry.is_dir():
            found.update(_walk(entry, f"{prefix}{entry.name}/"))
        elif not entry.name.startswith("."):
            found[prefix + entry.name] = entry.read_bytes()
    return found


class Web:
    def __init__(self, api_prefix: str) -> None:
        raw = _walk(resources.files("connector_telemetry.web") / "static")
        page = raw.pop("index.html")
        digest = hashlib.sha256()
        for name in sorted(raw):
            digest.update(name.encode() + b"\0" + raw[name] + b"\0")
        self.version = digest.hexdigest()[:16]
        self.assets = {name: _file(name, body) for name, body in raw.items()}
        page = page.replace(b"{{ASSETS}}", f"{ASSETS}{self.version}".encode())
        page = page.replace(b"{{API_PREFIX}}", _attribute(api_prefix.rstrip("/")))
        self.page = _file("index.html", page)

    def answer(self, req: Request) -> Response:
        """The page or an asset (``NotFound`` for any other file), as the client asked:
        304 for the ETag it has, gzip if it accepts it, no body for HEAD."""
        if req.path in PAGE_PATHS:
            found, caching = self.page, "no-cache"
        else:
            version, _, name = req.params["file"].partition("/")
            asset = self.assets.get(name)
            if asset is None:
                raise NotFound(f"no such file: {req.path}")
            found = asset
            # Another release's URL (a node of another version behind the same balancer):
            # this release's file, but not to be kept.
            current = version == self.version
            caching = "public, max-age=31536000, immutable" if current else "no-cache"
        headers = [
            ("content-type", found.content_type),
            ("cache-control", caching),
            ("etag", found.etag),
            ("vary", "accept-encoding"),
        ]
        if found.etag in (tag.strip() for tag in req.headers.get("if-none-match", "").split(",")):
            return 304, headers, b""
        body = found.body
        if found.gzipped is not None and "gzip" in req.headers.get("accept-encoding", ""):
            body = found.gzipped
            headers.append(("content-encoding", "gzip"))
        headers.append(("content-length", str(len(body))))
        return 200, headers, b"" if req.method == "HEAD" else body

    def routes(self) -> list[Route]:
        """``/``, ``/index.html`` and ``/assets/<version>/<file>`` at the server's root."""
        common: dict[str, Any] = {
            "mount": "root",
            "head": True,
            "answer": Prepared("text/html"),
            "headers": tuple(SECURITY_HEADERS),
            "result": {"type": "string"},
        }
        return [
            Route("GET", "/", self.answer, "public", "dashboard", "The dashboard", **common),
            Route(
                "GET", "/index.html", self.answer, "public", "dashboard.index", "The same", **common
            ),
            Route(
                "GET",
                ASSETS + "{file}",
                self.answer,
                "public",
                "dashboard.assets",
                "The dashboard's files",
                **common,
            ),
        ]


def _attribute(value: str) -> bytes:
    """``value`` safe inside a double-quoted HTML attribute."""
    escaped = (
        value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
    )
    return escaped.encode()
