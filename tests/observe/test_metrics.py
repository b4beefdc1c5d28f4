"""``/metrics``: a booking, a poll, an email and a manage page view move their metrics, the
states are read from the database, and no label carries an address, a token or a password.

The app is the real one (TestClient) on both databases, with a real Radicale calendar; the
scrape is parsed with prometheus_client's own parser.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from calsync.bookings import changes
from calsync.bookings.polling import booking_poller
from calsync.config import MailSettings, Settings
from calsync.notify import outbox
from calsync.notify.transport import transport_from_settings
from calsync.store.db import Database
from calsync.store.models import Actor, SyncOutcome, SyncRun
from calsync.web.app import create_app
from calsync.web.manage.rate_limit import RateLimits
from tests.support.manage_shop import Shop
from tests.support.servers import ServerProcess
from tests.support.web_process import WebProcess, process_env
from tests.support.world import at, next_monday

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> tuple[Samples, str]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found, response.text


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def shop(
    db: Database,
    settings: Settings,
    radicale_server: ServerProcess,
    radicale_calendar: str,
    tmp_path: Path,
) -> Shop:
    mail = MailSettings(directory=tmp_path / "mail")
    return Shop(db, settings.model_copy(update={"mail": mail}), radicale_calendar)


@pytest.fixture
def client(shop: Shop) -> Iterator[TestClient]:
    app = create_app(shop.settings, db=shop.db, manage_limits=RateLimits.off())
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


def test_a_booking_a_poll_an_email_and_a_page_view_show_in_the_metrics(
    shop: Shop, client: TestClient
) -> None:
    before, _ = scrape(client)
    shop.event_type()
    booked = shop.book(at(next_monday(), 9), at(next_monday(), 11))
    poller = booking_poller(shop.db, shop.settings)
    try:
        [polled] = poller.sync_now([shop.calendar_id])
    finally:
        poller.stop()
    changes.cancel(shop.db, shop.settings, booked.id, booked.session_ids[1:], actor=Actor.CUSTOMER)
    transport = transport_from_settings(shop.settings.mail)
    sent = outbox.deliver_due(shop.db, transport, "test", outbox.sealing_box(shop.settings))
    assert sent >= 2  # the booking's email and the cancellation's
    assert client.get(booked.path).status_code == 200
    assert client.get("/no/such/page").status_code == 404

    after, text = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("calsync_bookings_made_total", source="booked") == 1
    # Booking polls the conflict calendars too: every recorded poll is counted.
    with shop.db.reading() as session:
        runs = session.scalar(select(func.count()).select_from(SyncRun))
    assert polled.outcome is SyncOutcome.OK and runs >= 2
    assert moved("calsync_polls_total", result="ok") == runs
    assert moved("calsync_poll_duration_seconds_count") == runs
    assert moved("calsync_poll_lag_seconds_count") == 1  # a new calendar is due at once
    assert moved("calsync_changes_made_total", kind="cancel", actor="customer") == 1
    assert moved("calsync_outbox_deliveries_total", result="sent") == sent
    page = {"method": "GET", "route": "/m/{token}"}
    assert moved("calsync_http_requests_total", **page, status="200") == 1
    assert moved("calsync_http_request_duration_seconds_count", **page) == 1
    assert moved("calsync_http_requests_total", method="GET", route="<unmatched>", status="404")
    # Read from the database at scrape time.
    assert value(after, "calsync_calendars", state="ok") == 1
    assert value(after, "calsync_calendars", state="needs_reconnect") == 0
    assert value(after, "calsync_changes", state="applied") == 1
    assert value(after, "calsync_outbox_messages", state="sent") == sent
    assert value(after, "calsync_outbox_depth") == 0

    labels = {v for _, pairs in after for _, v in pairs}
    for label in labels:
        assert "@" not in label and "password" not in label.lower() and "://" not in label
        assert booked.token not in label
    assert booked.token not in text and "coach@example.org" not in text


def test_several_web_processes_are_summed_in_multiprocess_mode(tmp_path: Path) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = process_env(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(folder))
    webs = [WebProcess.start(env, tmp_path, f"web-{n}") for n in range(2)]
    try:
        # Each has answered its start-up /healthz; two more each.
        for web in webs:
            for _ in range(2):
                assert httpx.get(f"{web.base}/healthz").status_code == 200
        found = {}
        for web in webs:
            text = httpx.get(f"{web.base}/metrics").text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if (sample.name, sample.labels.get("route")) == (
                        "calsync_http_requests_total",
                        "/healthz",
                    ):
                        found[web.base] = sample.value
    finally:
        for web in webs:
            web.kill()
    # Whichever process answers the scrape, it counts the requests both processes answered.
    assert set(found.values()) == {6}
