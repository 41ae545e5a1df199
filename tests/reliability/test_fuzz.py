"""Fuzzing: schemathesis against the OpenAPI document the live server serves at
``/client/v4/openapi.json``, every operation of the app (the route list comes from the app,
so a new route is fuzzed without touching this file), each with valid credentials (a Magic WAN
Write token for the account, with that account's id and an existing connector's id in the path)
and without any credentials, each with schema-conforming (positive) and schema-violating
(negative) input.

Every response must:
- not be a 5xx;
- be JSON in Cloudflare's envelope ``{result, success, errors, messages}``, with ``success``
  matching the status and, for every non-2xx, ``result: null`` and a non-empty ``errors`` of
  ``{code: int, message: str}`` (the document itself, ``GET /openapi.json``, is served bare);
- have a status the operation declares, a declared content type, and match the declared schema
  for that status (schemathesis' ``status_code_conformance``, ``content_type_conformance``
  and ``response_schema_conformance``).

Failures are collected per distinct problem (with a curl line to reproduce) and reported at the
end of each operation's test, rather than stopping at the first.

It runs on each store (SQLite, and PostgreSQL, whose types and limits differ).
Sizes (cases over every operation x credentials x mode, per store): CI about 1,000 requests,
``CTEL_FULL=1`` about 100,000. Generation is derandomized; each test is also time-bounded.
"""

from __future__ import annotations

import copy
import math
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import hypothesis
import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from connector_telemetry.api.route import Route, Stream
from connector_telemetry.app import create_app
from connector_telemetry.settings import Settings
from support import (
    STORES,
    LiveServer,
    Tenant,
    create_connector,
    events_path,
    fresh_db,
    start_server,
    stop_server,
)
from support.reliability import report, size

pytestmark = pytest.mark.slow

# Requested cases; operations with few possible inputs (GET /openapi.json has exactly one)
# use up less, so the full size sends about 100,000 requests.
TOTAL_CASES = size(1_000, 110_000)
SECONDS_PER_TEST = size(20, 1_800)  # per operation and credentials; a bound, not a target
CREDENTIALS = ("write-token", "anonymous")
CREDENTIAL_HEADERS = ("authorization", "x-auth-email", "x-auth-key")
SCHEMATHESIS_CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def app_routes() -> list[Route]:
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(Settings(db=f"{folder}/r.db"))
        routes = [route for route in app.router.routes if route.mount == "api"]
        app.ctx.close()
    return routes


#: Live streams (issue 10) answer 200 with a body that never ends: their inputs and errors
#: are tested in tests/test_streams.py; the fuzzer's client would wait on them forever.
ROUTES = [route for route in app_routes() if not isinstance(route.answer, Stream)]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
CASES_PER_MODE = math.ceil(TOTAL_CASES / (len(ROUTES) * len(CREDENTIALS) * len(MODES)))


@dataclass
class FuzzEnv:
    server: LiveServer
    tenant: Tenant
    document: dict[str, Any]
    schema: Any  # schemathesis' OpenApiSchema
    statuses: Counter[str] = field(default_factory=Counter)
    skipped_for_time: int = 0


def oas30_compatible(document: dict[str, Any]) -> dict[str, Any]:
    """The document with OpenAPI 3.1 / JSON Schema 2019 style numeric ``exclusiveMaximum`` /
    ``exclusiveMinimum`` rewritten the OpenAPI 3.0 way (``maximum: x, exclusiveMaximum: true``),
    which schemathesis needs to generate data for a document that says ``openapi: 3.0.x``.
    test_openapi_document_is_valid asserts that the served document needs no such help."""
    fixed = copy.deepcopy(document)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, bound in (("exclusiveMaximum", "maximum"), ("exclusiveMinimum", "minimum")):
                value = node.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    node[bound] = value
                    node[key] = True
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(fixed)
    return fixed


@pytest.fixture(scope="module", params=STORES)
def fuzz_env(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[FuzzEnv]:
    folder = tmp_path_factory.mktemp("fuzz")
    url = None
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_server").new_database("ctel_fuzz")
    db, tenant = fresh_db(folder, url)
    server = start_server(db, workers=1, log_path=folder / "ctel.log")
    started = time.monotonic()
    try:
        response = httpx.get(server.api + "/openapi.json", timeout=30)
        assert response.status_code == 200, response.text
        document = response.json()
        schema = schemathesis.openapi.from_dict(oas30_compatible(document))
        env = FuzzEnv(server, tenant, document, schema)
        yield env
    finally:
        stop_server(server)
    total = sum(env.statuses.values())
    report(
        request.config,
        f"fuzz ({request.param}): {total} requests over {len(ROUTES)} operations x "
        f"{len(CREDENTIALS)} credentials x positive/negative ({CASES_PER_MODE} requested per "
        "combination) in "
        f"{time.monotonic() - started:.1f} s; statuses {dict(sorted(env.statuses.items()))}; "
        f"{env.skipped_for_time} cases skipped by the time bound",
    )


def numeric_exclusive_bounds(node: Any, pointer: str = "#") -> list[str]:
    """Where the document uses a number for exclusiveMaximum/exclusiveMinimum."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("exclusiveMaximum", "exclusiveMinimum") and not isinstance(value, bool):
                found.append(f"{pointer}/{key}: {value!r}")
            found += numeric_exclusive_bounds(value, f"{pointer}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += numeric_exclusive_bounds(value, f"{pointer}/{index}")
    return found


def test_openapi_document_is_valid(fuzz_env: FuzzEnv) -> None:
    """The served document is valid OpenAPI of the version it declares, and describes every
    route the app serves."""
    document = fuzz_env.document
    version = str(document.get("openapi"))
    if version.startswith("3.0"):
        assert numeric_exclusive_bounds(document) == [], (
            f"openapi {version}: exclusiveMaximum/exclusiveMinimum must be booleans next to "
            "maximum/minimum (numbers are OpenAPI 3.1 / JSON Schema 2019+)"
        )
    try:
        schemathesis.openapi.from_dict(document).validate()
    except ValueError as exc:
        where = "/".join(str(p) for p in getattr(exc, "instance_path", []))
        pytest.fail(f"not valid OpenAPI {version} at #/{where}: {str(exc)[:1000]}")
    documented = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch")
    }
    assert {(r.method, r.template) for r in ROUTES} <= documented


def envelope_problems(route: Route, response: schemathesis.Response) -> list[str]:
    """What is wrong with a response, by the rules every response of this API follows."""
    status = response.status_code
    problems = []
    if status >= 500:
        problems.append(f"HTTP {status} (server error)")
    if route.template == "/openapi.json" and status == 200:
        try:
            document = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return [*problems, "GET /openapi.json: the document is not JSON"]
        return problems if "openapi" in document else [*problems, "not an OpenAPI document"]
    content_type = ",".join(response.headers.get("content-type", []))
    if content_type.split(";")[0].strip() != "application/json":
        problems.append(f"HTTP {status}: Content-Type {content_type!r}, not application/json")
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return [*problems, f"HTTP {status}: body is not JSON"]
    # Cloudflare's paged lists (List Accounts) add ``result_info`` to a success.
    paged = {"result_info"} if status == 200 else set()
    envelope = {"result", "success", "errors", "messages"}
    if not isinstance(body, dict) or set(body) - paged != envelope:
        return [*problems, f"HTTP {status}: body is not the envelope"]
    success = 200 <= status < 300
    if body["success"] is not success:
        problems.append(f"HTTP {status} with success={body['success']!r}")
    if not isinstance(body["messages"], list):
        problems.append(f"HTTP {status}: messages is not a list")
    errors = body["errors"]
    if not isinstance(errors, list):
        return [*problems, f"HTTP {status}: errors is not a list"]
    if success:
        if errors:
            problems.append(f"HTTP {status} with errors")
        return problems
    if body["result"] is not None:
        problems.append(f"HTTP {status} with a non-null result")
    if not errors:
        problems.append(f"HTTP {status} with no errors")
    for error in errors:
        if not (
            isinstance(error, dict)
            and type(error.get("code")) is int
            and isinstance(error.get("message"), str)
            and error["message"]
        ):
            problems.append(f"HTTP {status}: malformed error {error!r}")
            break
    return problems


def schemathesis_problems(
    case: Any, response: schemathesis.Response, headers: dict[str, str]
) -> list[str]:
    try:
        case.validate_response(response, checks=SCHEMATHESIS_CHECKS, headers=headers)
    except BaseExceptionGroup as group:
        return [
            f"HTTP {response.status_code}: {getattr(f, 'title', type(f).__name__)}: "
            f"{str(getattr(f, 'message', f)).strip()[:600]}"
            for f in group.exceptions
        ]
    except AssertionError as failure:
        return [f"HTTP {response.status_code}: {str(failure).strip()[:600]}"]
    return []


def has_inputs_besides_ids(operation: Any) -> bool:
    """Whether negative data can be made without touching the account and connector ids."""
    extra_path = [
        p for p in operation.path_parameters if p.name not in ("account_id", "connector_id")
    ]
    return bool(extra_path or list(operation.query) or operation.body)


def has_inputs(operation: Any) -> bool:
    return bool(list(operation.path_parameters) or list(operation.query) or operation.body)


def _ids(route: Route) -> str:
    return f"{route.method} {route.template}"


@dataclass
class OperationFuzzer:
    """Fuzzes one operation with one set of credentials, collecting distinct problems."""

    env: FuzzEnv
    route: Route
    operation: Any  # schemathesis' APIOperation
    headers: dict[str, str]
    connector_id: str  # the shared connector of this test, in the path unless fuzzed
    fresh_connector_per_case: bool  # DELETE with credentials: delete throwaway connectors
    deadline: float
    session: requests.Session
    problems: dict[str, str] = field(default_factory=dict)
    sent: Counter[int] = field(default_factory=Counter)

    def run(self, mode: GenerationMode, pinned: dict[str, str]) -> None:
        strategy = self.operation.as_strategy(mode, path_parameters=pinned)

        @hypothesis.settings(
            max_examples=CASES_PER_MODE,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
            print_blob=False,
        )
        @hypothesis.given(case=strategy)
        def one_case(case: Any) -> None:
            self.send(case, mode)

        one_case()

    def send(self, case: Any, mode: GenerationMode) -> None:
        if time.monotonic() > self.deadline:
            self.env.skipped_for_time += 1
            return
        for name in list(case.headers or {}):
            if name.lower() in CREDENTIAL_HEADERS:
                del case.headers[name]  # only the credentials this test means to send
        if (
            self.fresh_connector_per_case
            and case.path_parameters.get("connector_id") == self.connector_id
        ):
            env = self.env
            case.path_parameters["connector_id"] = create_connector(env.server.api, env.tenant)[
                "id"
            ]
        response = case.call(
            base_url=self.env.server.api, headers=self.headers, session=self.session, timeout=60
        )
        self.sent[response.status_code] += 1
        found = envelope_problems(self.route, response)
        found += schemathesis_problems(case, response, self.headers)
        for problem in found:
            key = f"[{mode.value}] {problem}"
            if key not in self.problems and len(self.problems) < 50:
                self.problems[key] = (
                    f"{case.as_curl_command(headers=self.headers)}\n    -> "
                    f"{response.status_code} {response.content[:500].decode(errors='replace')}"
                )


@pytest.mark.parametrize("credentials", CREDENTIALS)
@pytest.mark.parametrize("route", ROUTES, ids=_ids)
def test_fuzz_operation(fuzz_env: FuzzEnv, route: Route, credentials: str) -> None:
    api, tenant = fuzz_env.server.api, fuzz_env.tenant
    operation = fuzz_env.schema[route.template][route.method]
    connector_id = create_connector(api, tenant)["id"]
    seeded = httpx.post(
        api + events_path(tenant.account_id, connector_id),
        json=[{"e": {"k": "Init"}, "t": t, "n": 0, "v": "2.0"} for t in range(5)],
        headers=tenant.write,
        timeout=30,
    )
    assert seeded.status_code == 200, seeded.text
    ids = {"account_id": tenant.account_id, "connector_id": connector_id}
    ours = {k: v for k, v in ids.items() if "{" + k + "}" in route.template}
    with requests.Session() as session:
        fuzzer = OperationFuzzer(
            fuzz_env,
            route,
            operation,
            headers=tenant.write if credentials == "write-token" else {},
            connector_id=connector_id,
            fresh_connector_per_case=route.method == "DELETE" and credentials == "write-token",
            deadline=time.monotonic() + SECONDS_PER_TEST,
            session=session,
        )
        for mode in MODES:
            if mode is GenerationMode.NEGATIVE and not has_inputs(operation):
                continue  # nothing to make invalid (GET /openapi.json)
            # Negative cases keep our ids when something else can be made invalid;
            # otherwise the ids are what gets fuzzed.
            keep_ids = mode is GenerationMode.POSITIVE or has_inputs_besides_ids(operation)
            fuzzer.run(mode, ours if keep_ids else {})
    fuzz_env.statuses.update({f"{credentials}:{code}": n for code, n in fuzzer.sent.items()})
    assert sum(fuzzer.sent.values()) > 0, "no case was sent"
    assert not fuzzer.problems, f"{len(fuzzer.problems)} distinct problem(s):\n\n" + "\n\n".join(
        f"{problem}\n    {example}" for problem, example in fuzzer.problems.items()
    )
