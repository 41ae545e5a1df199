"""``ctel export --format openmetrics``: an account's (or one connector's) snapshot history
as OpenMetrics text with timestamps, the input of ``promtool tsdb create-blocks-from
openmetrics`` (history into Prometheus, issue 12).

The series are the fleet endpoint's (``fleet_metrics.connector_samples`` renders both, so the
names, units and labels cannot drift apart), one sample per stored snapshot, stamped with the
snapshot's ``t`` in seconds; ``ctel_connector_info`` carries the version the snapshot reported
(``v``). Not exported: the last heartbeat (a fact of now, not of the past) and the event
counters (the fleet endpoint's, scraped live).

Streamed in constant memory: OpenMetrics wants a family's samples together (one ``# TYPE``
each) and within it each series' samples together, oldest first (as promtool requires), while
the store hands out snapshots connector by connector, oldest first, each with a sample of
every series. So samples go to spool files (``SpooledFamilies``): a connector's, one file per
series; at the connector's end, each series to its family's file; at the end, the families
one after the other, then ``# EOF``. The spool (about the size of the output) is in
``TMPDIR``; there are as many files open as a connector has series, plus one per family.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from typing import IO, Any, BinaryIO

import orjson

from connector_telemetry.errors import BadRequest
from connector_telemetry.models.connector import Connector
from connector_telemetry.service.fleet_metrics import Families, connector_samples, label_text
from connector_telemetry.service.transfer import PAGE, Progress
from connector_telemetry.store.base import Store


class SpooledFamilies(Families):
    """Samples with a timestamp (``at``) and ``extra`` labels, spooled to files: while a
    connector's history is read, each series to a file of its own (reused from connector
    to connector); at its end (``end_connector``) each series is appended to its family's
    file, so that each family's samples are together, and each series' within it."""

    def __init__(self, folder: str, extra: dict[str, str]) -> None:
        super().__init__()
        self.folder = folder
        self._extra = "," + label_text(**extra) if extra else ""
        self.at = b"0"
        self._spools: dict[str, tuple[str, str, IO[bytes]]] = {}  # family -> kind, help, file
        self._series: dict[str, dict[str, IO[bytes]]] = {}  # family -> series -> file
        self._free: list[IO[bytes]] = []

    def _file(self) -> IO[bytes]:
        return self._free.pop() if self._free else tempfile.TemporaryFile(dir=self.folder)

    def add(self, name: str, kind: str, help_: str, labels: str, value: Any) -> None:
        super().add(name, kind, help_, labels + self._extra, value)

    def keep(self, name: str, kind: str, help_: str, sample: str) -> None:
        series = self._series.get(name)
        if series is None:
            series = self._series[name] = {}
            if name not in self._spools:
                self._spools[name] = (kind, help_, self._file())
        key = sample.rpartition(" ")[0]
        spool = series.get(key)
        if spool is None:
            spool = series[key] = self._file()
        spool.write(sample.encode() + b" " + self.at + b"\n")

    def end_connector(self) -> None:
        for name, series in self._series.items():
            family = self._spools[name][2]
            for spool in series.values():
                spool.seek(0)
                shutil.copyfileobj(spool, family)
                spool.seek(0)
                spool.truncate()
                self._free.append(spool)
        self._series.clear()

    def write_to(self, out: BinaryIO) -> None:
        self.end_connector()
        for name, (kind, help_, spool) in self._spools.items():
            # OpenMetrics names a counter's family without the samples' ``_total``.
            family = name.removesuffix("_total") if kind == "counter" else name
            out.write(f"# HELP {family} {help_}\n# TYPE {family} {kind}\n".encode())
            spool.seek(0)
            shutil.copyfileobj(spool, out)
        out.write(b"# EOF\n")

    def close(self) -> None:
        self.end_connector()
        for _, _, spool in self._spools.values():
            spool.close()
        for spool in self._free:
            spool.close()
        self._spools.clear()
        self._free.clear()


def export_openmetrics(
    store: Store,
    account_id: str,
    connector_id: str | None,
    out: BinaryIO,
    progress: Progress,
    job: str = "ctel-fleet",
) -> int:
    """Write the history; returns the number of snapshots written. ``job``: the label the
    scrape config gives the fleet's series, so backfilled and scraped series are the same."""
    if not store.account_exists(account_id):
        raise BadRequest(f"account {account_id} not found")
    connectors = store.list_connectors(account_id, None)
    if connector_id is not None:
        connectors = [c for c in connectors if c.id == connector_id]
        if not connectors:
            raise BadRequest(f"connector {connector_id} not found in account {account_id}")
    written = 0
    with tempfile.TemporaryDirectory(prefix="ctel-openmetrics-") as folder:
        families = SpooledFamilies(folder, {"job": job} if job else {})
        try:
            for connector in connectors:
                written += _connector_history(store, account_id, connector, families, progress)
            families.write_to(out)
        finally:
            families.close()
    progress.close()
    return written


def _connector_history(
    store: Store, account_id: str, connector: Connector, out: SpooledFamilies, progress: Progress
) -> int:
    then = dataclasses.replace(connector, last_heartbeat=None)
    written = 0
    after: float | None = None
    while rows := store.export_snapshots(account_id, connector.id, after, PAGE):
        for t, _, doc in rows:
            snapshot = orjson.loads(doc)
            version = snapshot.get("v")
            if isinstance(version, str) and version != then.last_seen_version:
                then = dataclasses.replace(then, last_seen_version=version)
            out.at = repr(float(t)).encode()
            connector_samples(out, then, snapshot)
        written += len(rows)
        progress.advance(len(rows), f"{connector.id[:8]} snapshots")
        after = rows[-1][0]
    out.end_connector()
    return written
