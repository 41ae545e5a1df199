"""The layers, enforced: every import in src/ (at module level or inside a function) is
checked against the rules below, so a shortcut across layers fails here, not in review.

    shared types   models/, clock, errors, numbers, settings   import only each other
                   (and the package's ``__version__``, which every layer may read)
    store/         + shared types                    never service/, api/, app, server, cli
    service/       + store.base (the protocol)       never api/, app, server, cli, a store
    api/           + service/, store.base            never app, server, cli, a store
    web/           + api/ (routes serving files)     never service/, store/
    agent/, simulate/                                only themselves (and the package's version)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "connector_telemetry"
SRC = Path(__file__).parent.parent / "src" / PACKAGE

SHARED = ("", "models", "clock", "errors", "numbers", "settings")
#: layer (a module or package below connector_telemetry) -> what it may import from the
#: package, as prefixes ("" is the package itself: ``from connector_telemetry import
#: __version__``).
ALLOWED: dict[str, tuple[str, ...]] = {
    **{name: SHARED for name in SHARED if name},
    "store": (*SHARED, "store"),
    "service": (*SHARED, "service", "store.base"),
    "api": (*SHARED, "api", "service", "store.base"),
    "web": (*SHARED, "web", "api"),  # the dashboard's files: never store/ (a client of the API)
    "agent": ("", "agent"),
    "simulate": ("", "simulate", "progress"),  # the CLI's one progress bar
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    """Whether ``connector_telemetry.<name>`` is a module or package (not a name defined
    in the package's ``__init__``, such as ``__version__``)."""
    path = SRC.joinpath(*name.split("."))
    return path.is_dir() or path.with_suffix(".py").exists()


def imports(source: str, module: str, is_package: bool) -> list[str]:
    """What of this package ``source`` imports, as paths below it ("" for the package's own
    ``__init__``); relative imports resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            found += [f"{base}.{alias.name}" for alias in node.names]
    inside = []
    for name in found:
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            inner = name.removeprefix(PACKAGE).removeprefix(".")
            while inner and not _is_module(inner):  # a name, not a module: its module
                inner = inner.rpartition(".")[0]
            inside.append(inner)
    return inside


def violations(module: str, imported: list[str]) -> list[str]:
    """The imports of ``module`` its layer does not allow. Modules outside every layer
    (cli, app, server, testing, progress) are the entry points that compose them."""
    layer = module.removeprefix(PACKAGE).removeprefix(".").split(".")[0]
    allowed = ALLOWED.get(layer)
    if allowed is None:
        return []
    return [
        name
        for name in imported
        if not any(name == ok or (ok and name.startswith(ok + ".")) for ok in allowed)
    ]


def test_every_import_respects_the_layers() -> None:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        module = module_name(path)
        found = imports(path.read_text(), module, path.name == "__init__.py")
        problems += [f"{module} imports {name or PACKAGE}" for name in violations(module, found)]
    assert problems == []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("connector_telemetry.store.sqlite", "from connector_telemetry.service import events"),
        ("connector_telemetry.store.rows", "from connector_telemetry.api.envelope import ok"),
        ("connector_telemetry.service.events", "from connector_telemetry.store import sqlite"),
        ("connector_telemetry.service.events", "import connector_telemetry.store.postgres"),
        ("connector_telemetry.service.events", "from connector_telemetry.api import routing"),
        ("connector_telemetry.models.telemetry", "from connector_telemetry.service import clock"),
        ("connector_telemetry.api.events", "from connector_telemetry.store.sqlite import X"),
        ("connector_telemetry.agent.runner", "from connector_telemetry.app import create_app"),
        ("connector_telemetry.simulate.send", "from connector_telemetry.models import Connector"),
        ("connector_telemetry.simulate.send", "from .. import errors"),
    ],
)
def test_the_check_catches_a_shortcut(module: str, source: str) -> None:
    def check() -> None:
        assert violations(module, imports(f"def f():\n    {source}\n", module, False)) == []

    with pytest.raises(AssertionError):
        check()


def test_the_check_allows_what_the_layers_allow() -> None:
    allowed = {
        "connector_telemetry.store.postgres": "from connector_telemetry.models import Token",
        "connector_telemetry.service.events": "from connector_telemetry.store.base import Store",
        "connector_telemetry.api.events": "from connector_telemetry.service import events",
        "connector_telemetry.agent.cli": "from connector_telemetry import __version__",
    }
    for module, source in allowed.items():
        assert violations(module, imports(source, module, False)) == [], module
