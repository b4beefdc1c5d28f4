"""The owner's Google sign-in through calsync's own pages (OAuth web flow).

1. ``sign_in_url`` (asked for by the admin through the API or ``calsync calendar
   connect-google``) is Google's consent screen for one owner. Its ``state`` is sealed by
   calsync: the owner's id and the PKCE verifier, encrypted under a key of its own and good
   for ``STATE_MAX_AGE``. Nothing is stored until the owner comes back.
2. Google sends the browser to ``<base_url>/oauth/google/callback`` with a one-time code;
   ``finish_sign_in`` opens the state and exchanges the code (google-auth-oauthlib) for the
   grant, which the page then keeps sealed in a cookie while the owner chooses calendars.
3. ``seal_grant``/``open_grant``: that cookie's value. The calendars chosen are connected with
   ``services.add_google_calendar``, which stores the grant encrypted at rest.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from google_auth_oauthlib.flow import Flow

from calsync.calendars.google import account as google_connect
from calsync.config import Settings
from calsync.secretbox import SecretBox

log = logging.getLogger(__name__)

CALLBACK_PATH = "/oauth/google/callback"
STATE_MAX_AGE = 15 * 60  # seconds from the link to the owner's consent
GRANT_MAX_AGE = 30 * 60  # seconds from the consent to choosing calendars


class SignInError(Exception):
    """The sign-in cannot go on; the message tells the owner what to do."""


@dataclass(frozen=True, slots=True)
class SignedIn:
    owner_id: int
    token: str  # the grant, as ``google_connect.normalize_token`` stores it


def callback_url(settings: Settings) -> str:
    """The redirect URI to register with the Google OAuth client (from ``base_url``)."""
    return settings.base_url.rstrip("/") + CALLBACK_PATH


def sign_in_url(settings: Settings, owner_id: int) -> str:
    """Google's consent screen for ``owner_id``; raises ConfigError without a client."""
    flow = _flow(settings)
    flow.code_verifier = _verifier()
    state = _box(settings, "google sign-in state").encrypt(
        json.dumps({"owner": owner_id, "verifier": flow.code_verifier})
    )
    # prompt=consent: Google hands out a refresh token even when the owner agreed before.
    url, _ = flow.authorization_url(state=state, access_type="offline", prompt="consent")
    return str(url)


def finish_sign_in(settings: Settings, state: str, code: str) -> SignedIn:
    """The owner's grant from Google's answer. Raises SignInError."""
    sealed = _box(settings, "google sign-in state").open_recent(state, STATE_MAX_AGE)
    if sealed is None:
        raise SignInError(
            "This sign-in link is not valid any more (links work for 15 minutes). "
            "Ask for a new Google sign-in link and open it right away."
        )
    values = json.loads(sealed)
    flow = _flow(settings)
    flow.code_verifier = values["verifier"]
    try:
        answer = dict(flow.fetch_token(code=code, timeout=settings.sync.request_timeout_seconds))
    except Warning as narrowed:  # oauthlib: Google granted other scopes than were asked for
        answer = dict(getattr(narrowed, "token", {}))
        _check_scopes(getattr(narrowed, "new_scope", None) or [])
    except Exception as exc:  # oauthlib/requests raise many types; all mean the same here
        log.warning("Google sign-in: exchanging the code failed: %r", exc)
        raise SignInError(
            "Google did not accept the sign-in (the page may have been reloaded, or the "
            f"client settings differ): {type(exc).__name__}. Ask for a new sign-in link."
        ) from exc
    info = {**answer, "token_uri": settings.google.token_uri}
    try:
        token = google_connect.normalize_token(json.dumps(info), settings)
    except google_connect.TokenError as exc:
        raise SignInError(str(exc)) from None
    return SignedIn(owner_id=int(values["owner"]), token=token)


# What the consent screen shows for each scope, to name a permission the owner unticked.
PERMISSIONS = {
    "https://www.googleapis.com/auth/calendar.events": "see and edit events",
    "https://www.googleapis.com/auth/calendar.calendarlist.readonly": "see your list of calendars",
    "https://www.googleapis.com/auth/calendar.freebusy": "see your availability",
}


def _check_scopes(granted: list[str]) -> None:
    """Raise SignInError naming what the owner did not allow, if calsync needs it."""
    missing = [PERMISSIONS.get(s, s) for s in google_connect.SCOPES if s not in granted]
    if missing:
        raise SignInError(
            f"calsync needs permission to {' and '.join(missing)}, which was not given. Open "
            "a new sign-in link and leave every permission ticked."
        )


def seal_grant(settings: Settings, signed_in: SignedIn) -> str:
    payload = json.dumps({"owner": signed_in.owner_id, "token": signed_in.token})
    return _box(settings, "google sign-in grant").encrypt(payload)


def open_grant(settings: Settings, sealed: str) -> SignedIn | None:
    """The grant in a cookie sealed by ``seal_grant`` at most GRANT_MAX_AGE ago, else None."""
    opened = _box(settings, "google sign-in grant").open_recent(sealed, GRANT_MAX_AGE)
    if opened is None:
        return None
    values = json.loads(opened)
    return SignedIn(owner_id=int(values["owner"]), token=str(values["token"]))


def _box(settings: Settings, purpose: str) -> SecretBox:
    return SecretBox(settings.require_secret_key(), purpose=purpose)


def _verifier() -> str:
    return secrets.token_urlsafe(64)  # 86 characters of [A-Za-z0-9_-], as RFC 7636 allows


def _flow(settings: Settings) -> Flow:

    token_uri = settings.google.token_uri
    if _plain_loopback(token_uri):
        # oauthlib refuses http token endpoints and only reads this switch from the
        # environment; plain http is allowed only for a loopback test server or proxy.
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    return Flow.from_client_config(
        google_connect.client_config(settings, "web", callback_url(settings)),
        scopes=list(google_connect.SCOPES),
        redirect_uri=callback_url(settings),
    )


def _plain_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
