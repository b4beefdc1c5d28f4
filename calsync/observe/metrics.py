"""Every Prometheus metric of calsync, defined once, and the registry that ``/metrics`` serves.

Counters and histograms count in the process where the event happens. With several processes
(N ``calsync web``, M ``calsync worker``, or uvicorn workers) set ``PROMETHEUS_MULTIPROC_DIR``
to one empty folder, the same for all of them, before they start: each process then writes its
values there and any scrape sums them (prometheus_client's multi-process mode). The states
(calendars, changes, outbox) are read from the database at scrape time, so every process
reports the installation's, whichever one answers.

Labels carry only fixed words (results, states, route templates such as ``/m/{token}``):
never an address, a token or a URL.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from calsync.config import ConfigError
from calsync.store.db import Database
from calsync.store.models import (
    CalendarConnection,
    Change,
    ChangeStatus,
    ConnectionStatus,
    OutboxMessage,
    OutboxStatus,
)

log = logging.getLogger(__name__)

# No `_created` series beside every counter: Prometheus does not need them, they double the
# scrape.
disable_created_metrics()  # type: ignore[no-untyped-call]

POLLS = Counter("calsync_polls", "Calendar polls, by result (ok, failed, lease_lost).", ["result"])
POLL_DURATION = Histogram(
    "calsync_poll_duration_seconds",
    "Time one calendar poll took, fetching to storing.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
POLL_LAG = Histogram(
    "calsync_poll_lag_seconds",
    "How late a due calendar was polled: from its next poll time to the poll's start.",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
DELIVERIES = Counter(
    "calsync_outbox_deliveries",
    "Email deliveries, by result (sent, retry: refused for now, failed: refused for good).",
    ["result"],
)
BOOKINGS = Counter(
    "calsync_bookings_made", "Bookings made, by source (booked, adopted).", ["source"]
)
CHANGES = Counter(
    "calsync_changes_made",
    "Changes recorded, by kind (reschedule, cancel) and who asked (customer, owner, ...).",
    ["kind", "actor"],
)
HTTP_REQUESTS = Counter(
    "calsync_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "calsync_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class DatabaseStates(Collector):
    """Gauges read from the database at scrape time: one grouped count per table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def describe(self) -> list[Metric]:
        return []  # read at scrape time; nothing to check for clashes at registration

    def collect(self) -> Iterator[Metric]:
        calendars = GaugeMetricFamily(
            "calsync_calendars", "Connected calendars, by state.", labels=["state"]
        )
        changes = GaugeMetricFamily("calsync_changes", "Changes, by state.", labels=["state"])
        outbox = GaugeMetricFamily(
            "calsync_outbox_messages",
            "Outbox messages, by state; held + ready is the queue's depth.",
            labels=["state"],
        )
        try:
            with self.db.reading() as session:
                counts = [
                    dict(session.execute(select(column, func.count()).group_by(column)).all())
                    for column in (
                        CalendarConnection.status,
                        Change.status,
                        OutboxMessage.status,
                    )
                ]
        except SQLAlchemyError as exc:
            log.warning("metrics: cannot read the states from the database: %s", exc)
            return
        for family, enum, found in zip(
            (calendars, changes, outbox),
            (ConnectionStatus, ChangeStatus, OutboxStatus),
            counts,
            strict=True,
        ):
            for state in enum:
                family.add_metric([state.value], found.get(state, 0))
            yield family
        depth = counts[2].get(OutboxStatus.HELD, 0) + counts[2].get(OutboxStatus.READY, 0)
        yield GaugeMetricFamily(
            "calsync_outbox_depth", "Outbox messages not sent yet (held or ready).", value=depth
        )


class _ThisProcess(Collector):
    """The metrics of this process alone (no multi-process folder)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def scrape_registry(db: Database) -> CollectorRegistry:
    """What ``/metrics`` (and the worker's metrics port) serves for a process using ``db``."""
    registry = CollectorRegistry()
    if multiprocess_dir():
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_ThisProcess())
    registry.register(DatabaseStates(db))
    return registry


def serve_on_port(db: Database, host: str, port: int) -> None:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread (``calsync worker``)."""
    try:
        start_http_server(port, host, registry=scrape_registry(db))
    except OSError as exc:
        raise ConfigError(
            f"metrics_port {port}: cannot listen on {host}:{port} ({exc.strerror}); "
            "pick a free port or unset metrics_port"
        ) from None
