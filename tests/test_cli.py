"""The ``ctel`` CLI: only the value asked for on stdout, shapes as Cloudflare's,
and ``serve`` bootstrapping an empty database (with ``--demo``, a fleet)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx

from support import start_server, stop_server


def ctel(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector_telemetry", *args],
        capture_output=True,
        text=True,
        check=check,
    )


def test_credentials_commands(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    account = ctel("accounts", "create", "--db", db).stdout
    assert re.fullmatch(r"[0-9a-f]{32}\n", account)
    account = account.strip()
    assert (
        ctel("accounts", "create", "--db", db, "--id", "acc-1", "--name", "A").stdout == "acc-1\n"
    )
    too_long = ctel("accounts", "create", "--db", db, "--id", "x" * 33, check=False)
    assert too_long.returncode == 1 and too_long.stdout == "" and "32" in too_long.stderr
    token = ctel(
        "tokens",
        "create",
        "--db",
        db,
        "--account",
        account,
        "--permission",
        "Magic WAN Read",
        "--name",
        "ci",
    )
    assert re.fullmatch(r"[A-Za-z0-9_-]{40}\n", token.stdout) and "shown only once" in token.stderr
    ctel(
        "tokens",
        "create",
        "--db",
        db,
        "--account",
        account,
        "--permission",
        "Magic WAN Write",
        "--expires-on",
        "2030-01-01T00:00:00Z",
    )
    listed = ctel("tokens", "list", "--db", db).stdout.splitlines()
    assert len(listed) == 2 and token.stdout.strip() not in "".join(listed)
    token_id = listed[0].split("\t")[0]
    assert listed[0].split("\t")[2:4] == ["Magic WAN Read", "active"]
    ctel("tokens", "revoke", "--db", db, token_id)
    assert ctel("tokens", "list", "--db", db).stdout.splitlines()[0].split("\t")[3] == "revoked"
    again = ctel("tokens", "revoke", "--db", db, token_id, check=False)
    assert again.returncode == 1
    key = ctel(
        "users",
        "create",
        "--db",
        db,
        "--email",
        "ops@example.com",
        "--account",
        account,
        "--account",
        "acc-1",
    ).stdout
    assert re.fullmatch(r"[0-9a-f]{37}\n", key)
    unknown = ctel(
        "tokens",
        "create",
        "--db",
        db,
        "--account",
        "nope",
        "--permission",
        "Magic WAN Read",
        check=False,
    )
    assert unknown.returncode == 1 and "nope" in unknown.stderr and unknown.stdout == ""
    bad_perm = ctel(
        "tokens", "create", "--db", db, "--account", account, "--permission", "x", check=False
    )
    assert bad_perm.returncode == 2
    secrets_on_disk = Path(db).read_bytes()
    assert token.stdout.strip().encode() not in secrets_on_disk  # stored hashed
    assert key.strip().encode() not in secrets_on_disk


def test_serve_bootstraps_and_demo_has_data(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    server = start_server(db, "--demo")
    try:
        log = ""
        for _ in range(100):
            log = db.with_suffix(".log").read_text()
            if "API token" in log:
                break
        account = re.search(r"account id : (\w+)", log)
        token = re.search(r"API token  : ([\w-]{40})", log)
        assert account and token, log
        assert "curl http://127.0.0.1:" in log
        headers = {"Authorization": f"Bearer {token.group(1)}"}
        base = f"{server.api}/accounts/{account.group(1)}/magic/connectors"
        connectors = httpx.get(base, headers=headers).json()["result"]
        assert len(connectors) == 3
        latest = httpx.get(
            f"{base}/{connectors[0]['id']}/telemetry/events/latest", headers=headers
        ).json()["result"]
        assert latest["count"] == 10
        week = httpx.get(
            f"{base}/{connectors[0]['id']}/telemetry/events",
            params={"from": 0, "to": "inf", "limit": 1000},
            headers=headers,
        )
        kinds = {item["k"] for item in week.json()["result"]["items"]}
        assert {"Init", "StartAttestation", "RekeyStart", "StartUpgrade"} <= kinds
    finally:
        stop_server(server)
    # A restart finds the data and does not bootstrap again.
    server = start_server(db)
    stop_server(server)
    assert db.with_suffix(".log").read_text().count("API token") == 0
