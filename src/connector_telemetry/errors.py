"""Every error the API can answer with, as a typed exception.

Deep code raises one of these; exactly one place (``api.envelope.error_body``, called
by the app's dispatcher) renders it into Cloudflare's v4 envelope. The tree::

    ApiError                      status  code
    ├── BadRequest                400     1003  invalid field in a body or query
    │   ├── InvalidJson           400     1001  body is not JSON / not the expected shape
    │   ├── InvalidQuery          400     1002  bad query parameter
    │   ├── InvalidCursor         400     1005  cursor not issued by us, or for another query
    │   ├── BatchTooLarge         400     1006  more events than the batch limit
    │   ├── NoRoute               400     7000  no route for that URI
    │   ├── UnroutableId          400     7003  path id cannot be routed (malformed)
    │   ├── MissingCredentials    400     9106  no auth headers at all
    │   ├── InvalidHeaders        400     6003  malformed auth header (with error_chain)
    │   └── MissingAuthorization  400     1001  token verify called without a Bearer token
    ├── InvalidApiToken           401     1000  token verify with an unknown token
    ├── Forbidden                 403     10000 valid credential, no access to this resource
    │   ├── InvalidAccessToken    403     9109  unknown, revoked or expired token
    │   └── UnknownApiKey         403     9103  unknown X-Auth-Email / X-Auth-Key pair
    ├── NotFound                  404     1404
    │   └── NoPage                404     7000  a path outside the API prefix that is no route
    ├── MethodNotAllowed          405     10405
    ├── Conflict                  409     1409  (x-should-retry: false)
    ├── ResumeTokenExpired        410     1410  a stream's resume token older than retention
    ├── RequestTimeout            408     1408  the body did not arrive in time
    ├── PayloadTooLarge           413     1413
    ├── UnsupportedMediaType      415     1415
    ├── InternalError             500     1500  (a bug: logged with a request id)
    ├── Unavailable               503     1503  store busy (retry-after: 1)
    └── DiskFull                  507     1507  SQLite's disk is full (retry-after: 10)

(``api.throttle.TooManyFailures``, 429/971, is Cloudflare's rate-limit answer to an address
that failed to authenticate too often.)
"""

from __future__ import annotations


class ApiError(Exception):
    status: int = 400
    code: int = 1003

    def __init__(
        self,
        message: str,
        *,
        chain: list[tuple[int, str]] | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.chain = chain or []
        self.headers = headers or []


class BadRequest(ApiError):
    status, code = 400, 1003


def check_text(where: str, value: str) -> str:
    """Free text must not hold NUL: PostgreSQL's text cannot, and no client needs it."""
    if "\x00" in value:
        raise BadRequest(f"{where}: must not contain the NUL character (\\u0000)")
    return value


class InvalidJson(BadRequest):
    code = 1001


class InvalidQuery(BadRequest):
    code = 1002


class InvalidCursor(BadRequest):
    code = 1005


class BatchTooLarge(BadRequest):
    code = 1006


class NoRoute(BadRequest):
    code = 7000


class UnroutableId(BadRequest):
    code = 7003


class MissingCredentials(BadRequest):
    code = 9106

    def __init__(self) -> None:
        super().__init__("Missing X-Auth-Key, X-Auth-Email or Authorization headers")


class InvalidHeaders(BadRequest):
    code = 6003

    def __init__(self, chain: list[tuple[int, str]]) -> None:
        super().__init__("Invalid request headers", chain=chain)


class MissingAuthorization(BadRequest):
    code = 1001

    def __init__(self) -> None:
        super().__init__('Missing "Authorization" header')


class InvalidApiToken(ApiError):
    status, code = 401, 1000

    def __init__(self) -> None:
        super().__init__("Invalid API Token")


class Forbidden(ApiError):
    status, code = 403, 10000

    def __init__(self, message: str = "Authentication error") -> None:
        super().__init__(message)


class InvalidAccessToken(Forbidden):
    code = 9109

    def __init__(self) -> None:
        super().__init__("Invalid access token")


class UnknownApiKey(Forbidden):
    code = 9103

    def __init__(self) -> None:
        super().__init__("Unknown X-Auth-Key or X-Auth-Email")


class NotFound(ApiError):
    status, code = 404, 1404


class NoPage(NotFound):
    """Outside the API prefix (the dashboard, health checks, /metrics, test mode's /_ctel/),
    an unknown path is 404, as on any web server; under it, Cloudflare's 400 ``NoRoute``."""

    code = 7000


class MethodNotAllowed(ApiError):
    status, code = 405, 10405


class Conflict(ApiError):
    """A conflict that no retry can resolve: the SDK must not resend (it retries 409)."""

    status, code = 409, 1409

    def __init__(self, message: str) -> None:
        super().__init__(message, headers=[("x-should-retry", "false")])


class ResumeTokenExpired(ApiError):
    """A live stream's resume token (``Last-Event-ID``, ``after``) whose following items
    were removed by retention: resuming would silently skip them."""

    status, code = 410, 1410


class RequestTimeout(ApiError):
    status, code = 408, 1408


class PayloadTooLarge(ApiError):
    status, code = 413, 1413


class UnsupportedMediaType(ApiError):
    status, code = 415, 1415


class Unavailable(ApiError):
    """The store is busy (lock timeout); the SDK's retry is welcome."""

    status, code = 503, 1503

    def __init__(self, message: str) -> None:
        super().__init__(message, headers=[("retry-after", "1")])


class DiskFull(ApiError):
    """The disk holding the store is full: nothing of the request was stored. Retrying is
    welcome once space is freed (the SDK and the agent retry 5xx, after ``retry-after``)."""

    status, code = 507, 1507

    def __init__(self, message: str) -> None:
        super().__init__(message, headers=[("retry-after", "10")])


class InternalError(ApiError):
    """The safety net: an unexpected exception, logged with this request id."""

    status, code = 500, 1500


class ConfigError(Exception):
    """A problem with settings or the command line (never an HTTP answer)."""


class ResourceError(Exception):
    """Something a command needs cannot be used: the listen address is taken, the database
    is missing, unreadable, read-only or unreachable. The message says what is wrong and
    what to do; the CLI prints it on one line and exits 1 (``failures.explain``)."""
