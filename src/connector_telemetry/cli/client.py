"""The client commands' common ground: global options (base URL, credentials, account,
output mode), the official ``cloudflare`` SDK client built from them, how failures are
printed, and the ``connectors`` and ``interrupts`` commands.

Every call goes through the SDK's ``with_raw_response`` so the output is the API's own
``result`` (parsed from the body), while paths, query encoding and auth stay the SDK's:
the same commands work against api.cloudflare.com with only ``--base-url`` changed.

Failures: an API error prints ``error CODE: MESSAGE`` (each of the envelope's errors) and
exits 1; a server that cannot be reached prints the URL tried and exits 1; usage errors
(a bad option, no credentials, no account) exit 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

DEFAULT_BASE_URL = "http://127.0.0.1:8787/client/v4"
DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


class UsageError(Exception):
    """A command line that cannot work (exit 2)."""


class Failed(Exception):
    """Already explained on stderr (exit 1)."""


def add_globals(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The client options; ``suppress`` on subcommands, so that options given before
    the command are not reset by the subcommand's defaults."""
    default: Any = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("API client options")
    group.add_argument(
        "--base-url",
        default=default,
        help=f"API base URL (default: $CLOUDFLARE_BASE_URL, else {DEFAULT_BASE_URL})",
    )
    group.add_argument("--token", default=default, help="API token ($CLOUDFLARE_API_TOKEN)")
    group.add_argument("--email", default=default, help="user email ($CLOUDFLARE_EMAIL)")
    group.add_argument("--key", default=default, help="Global API Key ($CLOUDFLARE_API_KEY)")
    group.add_argument("--account", default=default, help="account id ($CLOUDFLARE_ACCOUNT_ID)")
    mode = group.add_mutually_exclusive_group()
    mode.add_argument(
        "--json",
        dest="output",
        action="store_const",
        const="json",
        default=default,
        help="print one JSON document (the API's result)",
    )
    mode.add_argument(
        "--ndjson",
        dest="output",
        action="store_const",
        const="ndjson",
        default=default,
        help="print one JSON item a line",
    )


class Client:
    """The SDK client and what ``tail`` needs to speak to the same server itself."""

    def __init__(self, args: argparse.Namespace) -> None:
        env = os.environ
        self.base_url = (
            getattr(args, "base_url", None) or env.get("CLOUDFLARE_BASE_URL") or DEFAULT_BASE_URL
        ).rstrip("/")
        token = getattr(args, "token", None) or env.get("CLOUDFLARE_API_TOKEN")
        email = getattr(args, "email", None) or env.get("CLOUDFLARE_EMAIL")
        key = getattr(args, "key", None) or env.get("CLOUDFLARE_API_KEY")
        account = getattr(args, "account", None) or env.get("CLOUDFLARE_ACCOUNT_ID")
        if not account:
            raise UsageError("no account: pass --account or set $CLOUDFLARE_ACCOUNT_ID")
        self.account: str = account
        if token:
            self.headers = {"Authorization": f"Bearer {token}"}
        elif email and key:
            self.headers = {"X-Auth-Email": email, "X-Auth-Key": key}
        else:
            raise UsageError(
                "no credentials: pass --token (or $CLOUDFLARE_API_TOKEN), or --email and --key "
                "($CLOUDFLARE_EMAIL, $CLOUDFLARE_API_KEY)"
            )
        try:
            from cloudflare import Cloudflare
        except ImportError:
            raise UsageError(
                "the client commands need the official SDK: "
                "pip install 'connector-telemetry[client]'"
            ) from None
        self.sdk = Cloudflare(
            api_token=token or None,
            api_email=None if token else email,
            api_key=None if token else key,
            base_url=self.base_url,
            max_retries=1,
        )
        self.connectors = self.sdk.magic_transit.connectors.with_raw_response

    def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """The API's ``result`` of one SDK call (raw), or ``Failed`` after saying why."""
        import cloudflare

        try:
            raw = method(*args, account_id=self.account, **kwargs)
        except cloudflare.APIStatusError as exc:
            report_api_error(exc.status_code, exc.body)
            raise Failed from None
        except cloudflare.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            _err(f"ctel: cannot reach {exc.request.url}: {cause}")
            raise Failed from None
        return json.loads(raw.http_response.content)["result"]


def report_api_error(status: int, body: Any) -> None:
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(body, dict) and isinstance(body, str):
        try:
            errors = json.loads(body).get("errors")
        except (ValueError, AttributeError):
            errors = None
    if errors:
        for error in errors:
            _err(f"error {error.get('code')}: {error.get('message')}")
    else:
        _err(f"error: HTTP {status}")


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def output_mode(args: argparse.Namespace) -> str:
    return getattr(args, "output", None) or "table"


# -- connectors --------------------------------------------------------------------------


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name in (
        "activated",
        "notes",
        "timezone",
        "interrupt_window_hour_of_day",
        "interrupt_window_duration_hours",
        "interrupt_window_days_of_week",
        "interrupt_window_embargo_dates",
        "provision_license",
    ):
        value = getattr(args, name, None)
        if value is not None:
            body[name] = value
    return body


def cmd_connectors(args: argparse.Namespace) -> int:
    from connector_telemetry.cli.output import Output

    client = Client(args)
    out = Output(output_mode(args))
    resource = client.connectors
    if args.action == "list":
        extra = {"device_type": args.device_type} if args.device_type else {}
        out.items("connector", client.call(resource.list, **extra))
    elif args.action == "get":
        out.one("connector", client.call(resource.get, args.connector_id))
    elif args.action == "delete":
        out.one("connector", client.call(resource.delete, args.connector_id))
    elif args.action == "create":
        device: dict[str, Any] = {}
        if args.device_id:
            device["id"] = args.device_id
        if args.serial_number:
            device["serial_number"] = args.serial_number
        if args.provision_license:
            device["provision_license"] = True
        if not device:
            raise UsageError("create needs --device-id, --serial-number or --provision-license")
        fields = _fields(args)
        fields.pop("provision_license", None)
        result = client.call(resource.create, device=device, **fields)
        out.one("connector", result)
    else:  # update (PUT) / edit (PATCH)
        method = resource.update if args.action == "update" else resource.edit
        out.one("connector", client.call(method, args.connector_id, **_fields(args)))
    return 0


def cmd_interrupts(args: argparse.Namespace) -> int:
    from connector_telemetry.cli.output import Output

    client = Client(args)
    out = Output(output_mode(args))
    resource = client.sdk.magic_transit.connectors.interrupts.with_raw_response
    if args.action == "list":
        out.items("interrupt", client.call(resource.list, args.connector_id))
    else:
        operation = {"purge": True} if args.purge else {}
        result = client.call(resource.create, args.connector_id, **{args.operation: operation})
        out.one("interrupt", result)
    return 0


def _connector_options(parser: argparse.ArgumentParser, *, create: bool) -> None:
    parser.add_argument("--activated", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--notes")
    parser.add_argument("--timezone", help="IANA time zone of the interrupt window")
    parser.add_argument("--interrupt-window-hour-of-day", type=float, metavar="HOUR")
    parser.add_argument("--interrupt-window-duration-hours", type=float, metavar="HOURS")
    parser.add_argument(
        "--interrupt-window-days-of-week",
        type=lambda s: [d.strip() for d in s.split(",") if d.strip()],
        metavar="DAYS",
        help="comma-separated, e.g. Monday,Thursday",
    )
    parser.add_argument(
        "--interrupt-window-embargo-dates",
        type=lambda s: [d.strip() for d in s.split(",") if d.strip()],
        metavar="DATES",
        help="comma-separated dates (YYYY-MM-DD)",
    )
    if create:
        parser.add_argument("--device-id", help="an existing device")
        parser.add_argument("--serial-number", help="a device by serial number")
    parser.add_argument(
        "--provision-license",
        action="store_true",
        default=None,
        help="create (or on update/edit: regenerate) the license key",
    )


def add_commands(sub: Any, parent: argparse.ArgumentParser) -> None:
    connectors = sub.add_parser(
        "connectors", help="list, show and change connectors (API client)"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    p = connectors.add_parser("list", parents=[parent], help="list the account's connectors")
    p.add_argument("--device-type", choices=["MANAGED", "LICENSED"])
    p = connectors.add_parser("get", parents=[parent], help="show one connector")
    p.add_argument("connector_id")
    p = connectors.add_parser("create", parents=[parent], help="create a connector")
    _connector_options(p, create=True)
    for action, text in (("update", "replace (PUT)"), ("edit", "change some fields (PATCH)")):
        p = connectors.add_parser(action, parents=[parent], help=f"{text} a connector")
        p.add_argument("connector_id")
        _connector_options(p, create=False)
    p = connectors.add_parser("delete", parents=[parent], help="delete a connector")
    p.add_argument("connector_id")
    for p in connectors.choices.values():
        p.set_defaults(func=cmd_connectors)

    interrupts = sub.add_parser(
        "interrupts", help="reboot, restart or shut down a connector (API client)"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    p = interrupts.add_parser("create", parents=[parent], help="request an operation")
    p.add_argument("connector_id")
    p.add_argument("operation", choices=["reboot", "restart", "shutdown"])
    p.add_argument("--purge", action="store_true", help="also wipe persistent state")
    p = interrupts.add_parser("list", parents=[parent], help="list a connector's interrupts")
    p.add_argument("connector_id")
    for p in interrupts.choices.values():
        p.set_defaults(func=cmd_interrupts)
