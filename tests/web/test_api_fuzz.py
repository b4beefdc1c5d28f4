"""Schemathesis against the admin API's own OpenAPI description: no request, valid or not,
gets a 5xx. Both databases (PostgreSQL refuses what SQLite stores: NUL in text, integers past
32 bits). Bounded: a fixed number of examples per operation, derandomized, so a run is
repeatable and takes about a minute.

The calendar routes that talk to a CalDAV server are left out: their 502 for a server that
cannot be reached is the documented answer, not a crash.
"""

from __future__ import annotations

import logging
import time
import warnings
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from calsync.bookings.event_types import EventTypeSpec, list_event_types, save_event_type
from calsync.config import GoogleSettings, Settings
from calsync.policy.hours import parse_weekly_hours
from calsync.store.db import Database
from calsync.sync import connections as services
from calsync.web.app import create_app
from tests.web.test_api import API_KEY

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {API_KEY}"}
EXAMPLES_PER_OPERATION = 30
# Reaching out to a CalDAV server: a 502 there is the documented answer.
TALKS_TO_SERVERS = {("POST", "/api/calendars"), ("POST", "/api/calendars/{calendar_id}/sync")}
log = logging.getLogger(__name__)


ZONES = ("Europe/Berlin", "UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham")
# The API's zone fields say ``format: iana-time-zone``: mostly real names, sometimes any text.
schemathesis.openapi.format("iana-time-zone", st.sampled_from(ZONES) | st.text(max_size=40))


def _seed(db: Database) -> None:
    """An owner and an event type (again, after a DELETE), so that id 1 names something."""
    if not services.list_owners(db):
        services.add_owner(
            db, name="Ada Lovelace", email="ada@example.org", timezone="Europe/Berlin"
        )
    if list_event_types(db):
        return
    save_event_type(
        db,
        EventTypeSpec(
            owner_email="ada@example.org",
            slug="intro-call",
            title="Intro call",
            duration=timedelta(minutes=30),
            timezone="Europe/Berlin",
            weekly_hours=parse_weekly_hours(("mon-fri 09:00-17:00",)),
        ),
    )


def _on_known_ids(case: schemathesis.Case, known: bool) -> schemathesis.Case:
    # Random ids almost never name a row; half the cases are sent to the seeded ones.
    if known:
        for name in case.path_parameters or {}:
            if name.endswith("_id") and name != "booking_id":
                case.path_parameters[name] = 1
    return case


def _send(client: TestClient, case: schemathesis.Case) -> Any:
    sent = case.as_transport_kwargs(base_url="http://testserver", headers=AUTH)
    body: dict[str, Any] = {}
    if "json" in sent:
        body["json"] = sent["json"]
    elif sent.get("data") is not None:
        body["content"] = sent["data"]
    return client.request(
        sent["method"], sent["url"], params=sent.get("params"), headers=sent["headers"], **body
    )


def test_no_request_to_the_api_gets_a_server_error(settings: Settings, db: Database) -> None:
    _seed(db)
    # A Google client, so the sign-in link is made (without one it is a documented 503).
    google = GoogleSettings(client_id="fuzz-client", client_secret="fuzz-secret")
    keyed = settings.model_copy(update={"admin_api_key": API_KEY, "google": google})
    app = create_app(keyed, db=db)
    # Schemathesis generates the cases; they are sent through Starlette's client (its own
    # requests-based transport clashes with urllib3-future, which another package installs),
    # which also runs the app's lifespan and answers a crash as the 500 a server would send.
    client = TestClient(app, raise_server_exceptions=False).__enter__()
    schema = schemathesis.openapi.from_dict(client.get("/api/openapi.json").json())
    server_errors: list[str] = []
    operations = examples = 0
    began = time.monotonic()

    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in TALKS_TO_SERVERS:
            continue
        operations += 1
        generated = st.one_of(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )
        strategy = st.builds(_on_known_ids, generated, st.booleans())

        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def call(case: schemathesis.Case) -> None:
            nonlocal examples
            examples += 1
            _seed(db)
            response = _send(client, case)
            try:
                case.validate_response(response, checks=[not_a_server_error])
            except (Exception, BaseExceptionGroup):  # schemathesis' FailureGroup
                server_errors.append(
                    f"{case.method} {case.formatted_path} → {response.status_code}: "
                    f"query={case.query!r} body={case.body!r}"
                )

        call()
    client.__exit__(None, None, None)

    log.warning(
        "schemathesis: %d operations, %d examples, %.1f s, %d server errors",
        operations,
        examples,
        time.monotonic() - began,
        len(server_errors),
    )
    assert operations >= 15
    assert not server_errors, "\n".join(server_errors[:20])
