"""The sync-collection REPORT (RFC 6578) by hand: its request body and one page of its answer.

A poll that finds nothing new is one such REPORT, so it is built and read here with lxml
directly instead of through caldav's element classes and response objects, which cost more
than the request itself. Used by ``CalDAVProvider``; nothing here sends a request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from urllib.parse import urljoin
from xml.sax.saxutils import escape

from caldav.lib.error import parse_preconditions
from lxml import etree

from calsync.calendars.base import ETag, Href
from calsync.calendars.caldav.wire import XML_HEAD, href_of

#: Headers of the REPORT besides the client's own (User-Agent, authorization).
SYNC_HEADERS = {"Depth": "1", "Content-Type": 'application/xml; charset="utf-8"'}

_MULTISTATUS = "{DAV:}multistatus"
_RESPONSE = "{DAV:}response"
_HREF = "{DAV:}href"
_STATUS = "{DAV:}status"
_PROPSTAT = "{DAV:}propstat"
_ETAG = "{DAV:}prop/{DAV:}getetag"
_TOKEN = "{DAV:}sync-token"
_parsers = threading.local()


def _parser() -> etree.XMLParser:
    """This thread's parser (an lxml parser must not be used by two threads at once). No
    entities, no network, no DTD: the answer comes from a server calsync does not control."""
    parser: etree.XMLParser | None = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True
        )
    return parser


def sync_body(token: str | None) -> bytes:
    """The REPORT asking for the hrefs and ETags changed since ``token`` (None: all of them)."""
    return (
        f'{XML_HEAD}<D:sync-collection xmlns:D="DAV:"><D:sync-token>{escape(token or "")}'
        "</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop>"
        "</D:sync-collection>"
    ).encode()


class SyncRefused(Exception):
    """The server answered the REPORT with ``status``; ``preconditions`` names the DAV:error
    conditions its body gave (``{DAV:}valid-sync-token`` for a token it no longer knows)."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status} to sync-collection: {body[:200]!r}")
        self.status = status
        self.preconditions = parse_preconditions(body) if body else []


class Unreadable(Exception):
    """The answer is not a multistatus (an HTML page, a proxy's error, broken XML)."""


@dataclass(slots=True)
class SyncPage:
    """One page of a sync-collection answer.

    ``listed``: members added or changed, with their ETag (None when the server gave none);
    ``deleted``: members removed (a 404 for the member, RFC 6578 3.5.2); ``token``: the new
    sync token, None when the answer had none; ``truncated``: the server stopped early (a 507
    for the collection itself, RFC 6578 3.6) and more pages follow from ``token``.
    """

    listed: dict[Href, ETag | None] = field(default_factory=dict)
    deleted: set[Href] = field(default_factory=set)
    token: str | None = None
    truncated: bool = False


def _code(status: str | None) -> int | None:
    """200 from ``HTTP/1.1 200 OK``."""
    parts = (status or "").split(None, 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def parse_sync_page(content: bytes, collection: Href) -> SyncPage:
    """Read one sync-collection answer for the collection at ``collection`` (its href).

    The collection itself (iCloud lists it) and sub-collections are left out. A member listed
    twice counts as changed with its last ETag if any entry gave one (Cyrus lists some both
    ways, removed and changed), as caldav read it. Raises ``Unreadable``."""
    try:
        root = etree.fromstring(content, _parser())
    except etree.XMLSyntaxError as exc:
        raise Unreadable(str(exc)) from exc
    if root.tag != _MULTISTATUS:
        raise Unreadable(f"a {root.tag} element instead of a multistatus")
    page = SyncPage()
    base = collection.rstrip("/")
    for response in root.iterfind(_RESPONSE):
        href_text = response.findtext(_HREF)
        if not href_text:
            continue
        # Relative hrefs are relative to the collection (caldav joined them to its URL).
        href = href_of(urljoin(base + "/", href_text.strip()))
        status = _code(response.findtext(_STATUS))
        if href.rstrip("/") == base:
            if status == 507:
                page.truncated = True
            continue
        if status == 507:
            # RFC 6578 3.6 marks truncation on the collection only; caldav raised on any other.
            raise Unreadable(f"507 Insufficient Storage for {href}")
        if href.endswith("/"):
            continue  # a sub-collection
        etag: ETag | None = None
        for propstat in response.iterfind(_PROPSTAT):
            code = _code(propstat.findtext(_STATUS))
            if code == 200:
                found = propstat.findtext(_ETAG)
                if found:
                    etag = found
            elif code != 404:
                # A server failing on a member's properties: the ETag listing is the safer
                # way to read this calendar (caldav raised on it too).
                raise Unreadable(f"{code} for the properties of {href}")
        if status == 404 and etag is None:
            # Removed, unless another entry of this page gave it an ETag (Cyrus lists some
            # members both ways, in either order): any ETag means changed, as caldav read it.
            if page.listed.get(href) is None:
                page.deleted.add(href)
                page.listed.pop(href, None)
        else:
            page.listed[href] = etag if etag is not None else page.listed.get(href)
            page.deleted.discard(href)
    token = root.findtext(_TOKEN)
    page.token = token.strip() if token and token.strip() else None
    return page
