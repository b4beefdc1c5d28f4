"""The hand-made sync-collection REPORT (``calendars/caldav/sync_report.py``): its answers as
servers spell them, read without a server (the provider tests send it to real ones)."""

from __future__ import annotations

import pytest

from calsync.calendars.caldav.sync_report import (
    SyncRefused,
    Unreadable,
    parse_sync_page,
    sync_body,
)

OK = "<D:status>HTTP/1.1 200 OK</D:status>"


def answer(*responses: str, token: str | None = "tok-2") -> bytes:
    inner = "".join(responses) + (f"<D:sync-token>{token}</D:sync-token>" if token else "")
    return (f'<?xml version="1.0"?><D:multistatus xmlns:D="DAV:">{inner}</D:multistatus>').encode()


def member(href: str, etag: str | None = None, status: str | None = None) -> str:
    props = (
        f"<D:propstat><D:prop><D:getetag>{etag}</D:getetag></D:prop>{OK}</D:propstat>"
        if etag
        else ""
    )
    top = f"<D:status>{status}</D:status>" if status else ""
    return f"<D:response><D:href>{href}</D:href>{top}{props}</D:response>"


def test_changes_removals_and_token() -> None:
    page = parse_sync_page(
        answer(
            member("/cal/", "x"),  # the collection itself (iCloud lists it)
            member("/cal/a%40b.ics", '"1"'),
            member("http://host/cal/gone.ics", status="HTTP/1.1 404 Not Found"),
            member("/cal/sub/", '"s"'),
        ),
        "/cal/",
    )
    assert page.listed == {"/cal/a%40b.ics": '"1"'}
    assert page.deleted == {"/cal/gone.ics"}
    assert (page.token, page.truncated) == ("tok-2", False)


def test_a_member_both_removed_and_changed_counts_as_changed() -> None:
    # Cyrus lists some members both ways; any entry with an ETag makes it changed.
    both = member("/cal/a.ics", '"2"', status="HTTP/1.1 404 Not Found")
    page = parse_sync_page(
        answer(member("/cal/a.ics", status="HTTP/1.1 404 Not Found"), both), "/cal"
    )
    assert (page.listed, page.deleted) == ({"/cal/a.ics": '"2"'}, set())


def test_a_member_changed_then_listed_removed_still_counts_as_changed() -> None:
    # The other order Cyrus may use: the ETag entry first, then a bare 404.
    both = member("/cal/a.ics", '"2"', status="HTTP/1.1 404 Not Found")
    page = parse_sync_page(
        answer(both, member("/cal/a.ics", status="HTTP/1.1 404 Not Found")), "/cal"
    )
    assert (page.listed, page.deleted) == ({"/cal/a.ics": '"2"'}, set())


@pytest.mark.parametrize("collection", ["/cal/", "/cal"])
def test_relative_hrefs_are_read_against_the_collection(collection: str) -> None:
    page = parse_sync_page(
        answer(member("a.ics", '"1"'), member("gone.ics", status="HTTP/1.1 404 Not Found")),
        collection,
    )
    assert (page.listed, page.deleted) == ({"/cal/a.ics": '"1"'}, {"/cal/gone.ics"})


def test_a_404_only_in_the_propstat_is_listed_without_etag() -> None:
    # Not how RFC 6578 reports a removal: the multiget that follows tells whether it is gone.
    propstat_404 = (
        "<D:response><D:href>/cal/a.ics</D:href><D:propstat><D:prop><D:getetag/></D:prop>"
        "<D:status>HTTP/1.1 404 Not Found</D:status></D:propstat></D:response>"
    )
    page = parse_sync_page(answer(propstat_404), "/cal/")
    assert (page.listed, page.deleted) == ({"/cal/a.ics": None}, set())


def test_truncation_is_a_507_for_the_collection() -> None:
    page = parse_sync_page(
        answer(member("/cal/a.ics", '"1"'), member("/cal", status="HTTP/1.1 507 Insufficient")),
        "/cal/",
    )
    assert page.truncated and page.listed == {"/cal/a.ics": '"1"'}
    with pytest.raises(Unreadable, match="507"):
        parse_sync_page(answer(member("/cal/a.ics", status="HTTP/1.1 507 Full")), "/cal/")


@pytest.mark.parametrize(
    "content",
    [b"<html><body>Welcome</body></html>", b"", b"<D:multistatus xmlns:D='DAV:'>"],
)
def test_anything_but_a_multistatus_is_unreadable(content: bytes) -> None:
    with pytest.raises(Unreadable):
        parse_sync_page(content, "/cal/")


def test_no_token_and_an_empty_answer() -> None:
    page = parse_sync_page(answer(token=None), "/cal/")
    assert (page.listed, page.deleted, page.token) == ({}, set(), None)


def test_body_escapes_the_token_and_refusal_names_the_precondition() -> None:
    assert b"<D:sync-token>a&amp;b</D:sync-token>" in sync_body("a&b")
    assert b"<D:sync-token></D:sync-token>" in sync_body(None)
    refused = SyncRefused(403, b'<D:error xmlns:D="DAV:"><D:valid-sync-token/></D:error>')
    assert (refused.status, refused.preconditions) == (403, ["{DAV:}valid-sync-token"])
