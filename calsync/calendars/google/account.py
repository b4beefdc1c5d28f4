"""Connecting Google calendars: the owner's OAuth grant, stored tokens, and opening the provider.

The grant is an "authorized user" token JSON (what ``Credentials.to_json()`` writes): refresh
token, client id/secret and token URI. calsync stores it encrypted and builds short-lived
credentials from it for every poll or write; google-auth refreshes the access token itself.

``console_flow`` runs google-auth-oauthlib's loopback flow for ``calsync calendar add
--google``: it prints a URL, the owner opens it in any browser on this machine, and Google
redirects to a one-shot server on 127.0.0.1 (the web flow is in ``google_signin``). Scopes
are limited to events, the calendar list and free/busy (``SCOPES``).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from google.oauth2.credentials import Credentials

from calsync.calendars.errors import NotFound
from calsync.calendars.google.provider import RECONNECT, GoogleProvider
from calsync.config import ConfigError, Settings

# The least calsync needs: events (read and write), the calendar list (names, zones, to
# choose from), and free/busy (the check at booking time). Not calendar.readonly, which also
# shows sharing settings and every calendar's properties.
SCOPES = (
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.calendarlist.readonly",
    "https://www.googleapis.com/auth/calendar.freebusy",
)
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"


class TokenError(ValueError):
    """A token JSON that cannot be used; the message says what is wrong and what to do."""


def client_config(
    settings: Settings, kind: str = "installed", redirect_uri: str = "http://127.0.0.1"
) -> dict[str, Any]:
    """The client configuration (``installed`` for the loopback flow, ``web`` for the sign-in
    page) from ``[google]`` client_id/client_secret. Raises ConfigError without them."""
    google = settings.google
    if not google.client_id or not google.client_secret:
        raise ConfigError(
            "google.client_id and google.client_secret are not set: create an OAuth client in "
            'the Google Cloud console ("Web application" for the sign-in page, "Desktop app" '
            "for `calsync calendar add --google`) and put its id and secret in the [google] "
            "section of the config file (or CALSYNC_GOOGLE__CLIENT_ID and "
            "CALSYNC_GOOGLE__CLIENT_SECRET)"
        )
    return {
        kind: {
            "client_id": google.client_id,
            "client_secret": google.client_secret,
            "auth_uri": google.auth_uri,
            "token_uri": google.token_uri,
            "redirect_uris": [redirect_uri],
        }
    }


def console_flow(settings: Settings, *, open_browser: bool = False) -> str:
    """Ask the owner for access (loopback flow) and return the token JSON to store.

    Prints the consent URL and waits for Google's redirect to 127.0.0.1 on a free port.
    ``access_type=offline`` and ``prompt=consent`` make Google hand out a refresh token even
    when the owner granted access before. Raises ConfigError without a client id/secret.
    """
    from google_auth_oauthlib.flow import InstalledAppFlow  # only needed here

    flow = InstalledAppFlow.from_client_config(client_config(settings), scopes=list(SCOPES))
    credentials = flow.run_local_server(
        host="127.0.0.1",
        port=0,
        open_browser=open_browser,
        authorization_prompt_message=(
            "Open this URL in a browser on this machine and allow calsync access:\n{url}"
        ),
        success_message="calsync has access to the calendar now; you may close this window.",
        access_type="offline",
        prompt="consent",
    )
    return str(credentials.to_json())


def normalize_token(text: str, settings: Settings) -> str:
    """The token JSON to store: the grant only (no short-lived access token).

    A token without client id/secret gets the configured ones (a refresh token only works with
    the client it was issued to). Raises TokenError when it is unusable.
    """
    try:
        info = json.loads(text)
    except ValueError as exc:
        raise TokenError(f"the Google token is not JSON: {exc}") from None
    if not isinstance(info, dict):
        raise TokenError("the Google token must be a JSON object (Credentials.to_json())")
    if not info.get("refresh_token"):
        raise TokenError(
            "the Google token has no refresh_token, so calsync could not keep access: connect "
            "with `calsync calendar add --google` (it asks for offline access)"
        )
    info.setdefault("client_id", settings.google.client_id)
    info.setdefault("client_secret", settings.google.client_secret)
    if not info.get("client_id") or not info.get("client_secret"):
        raise TokenError(
            "the Google token names no client_id/client_secret and google.client_id/"
            "client_secret are not configured: a refresh token works only with its client"
        )
    keep = ("refresh_token", "client_id", "client_secret", "token_uri", "scopes", "account")
    stored = {k: info[k] for k in keep if info.get(k)}
    stored["token_uri"] = _token_uri(stored, settings)
    return json.dumps(stored, sort_keys=True)


def _token_uri(info: dict[str, Any], settings: Settings) -> str:
    """Where the refresh token is sent: Google's endpoint, the configured ``google.token_uri``,
    or one on the configured ``google.api_endpoint`` host (tests, proxies). A token JSON naming
    any other place is refused: it would receive the refresh token and the client secret."""
    uri = str(info.get("token_uri") or settings.google.token_uri)
    if uri in (GOOGLE_TOKEN_URI, settings.google.token_uri):
        return uri
    endpoint = settings.google.api_endpoint
    if endpoint and _origin(uri) == _origin(endpoint):
        return uri
    raise TokenError(
        f"the Google token names token_uri {uri!r}: calsync sends refresh tokens only to "
        f"{GOOGLE_TOKEN_URI} (or to the host of google.api_endpoint)"
    )


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def credentials_from_token(text: str, settings: Settings) -> Credentials:
    """Credentials (refreshed on first use) from a stored token JSON. Raises TokenError.

    Built by hand rather than with ``Credentials.from_authorized_user_info``, which always
    uses Google's token URI and so cannot work against a test server or proxy.
    """
    try:
        info = json.loads(text)
        if not isinstance(info, dict):
            raise TypeError("not a JSON object")
        missing = [k for k in ("refresh_token", "client_id", "client_secret") if not info.get(k)]
        if missing:
            raise KeyError(", ".join(missing))
    except (ValueError, TypeError, KeyError) as exc:
        raise TokenError(f"the stored Google token is unusable ({exc})") from None
    scopes = info.get("scopes")
    if isinstance(scopes, str):
        scopes = scopes.split()
    return Credentials(  # type: ignore[no-untyped-call]
        token=None,
        refresh_token=info["refresh_token"],
        token_uri=_token_uri(info, settings),
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        scopes=scopes,
    )


# An access token lasts an hour, but a provider is opened for every poll and write: without
# this, each of them would first ask Google's token endpoint for a new one. Kept per grant
# (keyed by a digest of the stored token JSON, so a reconnect starts afresh) in this process;
# google-auth refreshes a kept one when it expires, or when Google answers 401.
_KEPT_CREDENTIALS: OrderedDict[str, Credentials] = OrderedDict()
_KEPT_LOCK = threading.Lock()
KEPT_GRANTS = 1024


def kept_credentials(text: str, settings: Settings) -> Credentials:
    """The credentials for a stored token JSON, reused across polls. Raises TokenError."""
    key = hashlib.sha256(f"{text}\0{settings.google.token_uri}".encode()).hexdigest()
    with _KEPT_LOCK:
        if key in _KEPT_CREDENTIALS:
            _KEPT_CREDENTIALS.move_to_end(key)
            return _KEPT_CREDENTIALS[key]
    credentials = credentials_from_token(text, settings)
    with _KEPT_LOCK:
        _KEPT_CREDENTIALS[key] = credentials
        while len(_KEPT_CREDENTIALS) > KEPT_GRANTS:
            _KEPT_CREDENTIALS.popitem(last=False)
    return credentials


def open_calendar(
    settings: Settings,
    calendar_id: str,
    token: str,
    *,
    quota_user: str | None = None,
    reuse_access: bool = False,
) -> GoogleProvider:
    """A GoogleProvider for ``calendar_id`` with the stored ``token``; ``reuse_access`` keeps
    its access token for the next provider of the same grant. Raises TokenError."""
    credentials = (
        kept_credentials(token, settings)
        if reuse_access
        else credentials_from_token(token, settings)
    )
    return GoogleProvider(
        calendar_id,
        credentials=credentials,
        api_endpoint=settings.google.api_endpoint,
        quota_user=quota_user,
        timeout=settings.sync.request_timeout_seconds,
    )


@dataclass(frozen=True, slots=True)
class AccountCalendar:
    """One calendar in the owner's Google calendar list."""

    id: str
    name: str
    access_role: str  # owner, writer, reader
    primary: bool
    time_zone: str | None

    @property
    def writable(self) -> bool:
        """Whether bookings can be written into it (else it can only count as busy time)."""
        return self.access_role in ("owner", "writer")


def account_calendars(settings: Settings, token: str) -> list[AccountCalendar]:
    """The calendars the grant can read (``calendarList.list``), the primary one first.

    Calendars shared as free/busy only are left out: their events cannot be listed, so they
    cannot be synced. Raises TokenError or a ProviderError."""
    provider = open_calendar(settings, "primary", token)
    try:
        entries: list[dict[str, Any]] = []
        page_token: str | None = None
        while True:
            params: dict[str, Any] = {"minAccessRole": "reader", "maxResults": 250}
            if page_token:
                params["pageToken"] = page_token
            page = provider.call(
                provider.service.calendarList().list(**params), "list your calendars"
            )
            entries.extend(page.get("items", []))
            page_token = page.get("nextPageToken")
            if not page_token:
                break
    finally:
        provider.close()
    calendars = [
        AccountCalendar(
            id=str(e["id"]),
            name=str(e.get("summaryOverride") or e.get("summary") or e["id"]),
            access_role=str(e.get("accessRole", "reader")),
            primary=bool(e.get("primary")),
            time_zone=e.get("timeZone"),
        )
        for e in entries
        if not e.get("deleted")
    ]
    return sorted(calendars, key=lambda c: (not c.primary, c.name.casefold()))


def reconnect_message(detail: str) -> str:
    """The message for a connection whose grant is gone (shown by ``calendar list``)."""
    return f"{RECONNECT} ({detail})"


def describe_calendar(provider: GoogleProvider) -> dict[str, Any]:
    """Check that the calendar can be read, and return its metadata (``summary``, ``timeZone``).

    Listing one event proves access; the name, zone, real id and access role come from the
    owner's calendar list (``calendars.get`` would need a wider scope than calsync asks for),
    and are left out for a calendar that is readable but not in the list. Raises
    ProviderError (NotFound for an unknown calendar id, AuthFailed for a refused grant).
    """
    call, service, cid = provider.call, provider.service, provider.calendar_id
    extra = {"quotaUser": provider.quota_user} if provider.quota_user else {}
    call(service.events().list(calendarId=cid, maxResults=1, **extra), "check access")
    try:
        return dict(call(service.calendarList().get(calendarId=cid, **extra), "calendar name"))
    except NotFound:
        return {}
