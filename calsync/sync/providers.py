"""Opening the provider for a stored calendar connection (decrypting its credentials)."""

from __future__ import annotations

from collections.abc import Callable

from calsync.calendars.base import CalendarProvider
from calsync.calendars.caldav.provider import CalDAVProvider
from calsync.calendars.errors import AuthFailed, GrantRevoked
from calsync.config import Settings
from calsync.secretbox import SecretBox, SecretKeyMismatch
from calsync.store.models import CalendarConnection, ProviderKind

ProviderFactory = Callable[[CalendarConnection], CalendarProvider]


def open_provider(settings: Settings) -> ProviderFactory:
    """A factory that opens the right provider for a connection row."""

    def factory(connection: CalendarConnection) -> CalendarProvider:
        password = None
        if connection.secret_encrypted:
            try:
                box = SecretBox(settings.require_secret_key())
                password = box.decrypt(connection.secret_encrypted)
            except SecretKeyMismatch as exc:
                raise AuthFailed(str(exc), url=connection.url) from exc
        if connection.provider is ProviderKind.CALDAV:
            return CalDAVProvider(
                connection.url,
                username=connection.username,
                password=password,
                timeout=settings.sync.request_timeout_seconds,
            )
        if connection.provider is ProviderKind.GOOGLE:
            # Imported here: Google's client libraries take ~0.1 s to import, which every
            # process that polls only CalDAV calendars (`calsync sync`) would pay for.
            from calsync.calendars.google import account as google_connect

            # The stored secret is the owner's OAuth grant (see ``google_connect``).
            if password is None:
                raise GrantRevoked(
                    google_connect.reconnect_message("no Google token is stored"),
                    url=connection.url,
                )
            try:
                return google_connect.open_calendar(
                    settings,
                    connection.url,
                    password,
                    quota_user=f"owner-{connection.owner_id}",
                    reuse_access=True,
                )
            except google_connect.TokenError as exc:
                # The stored grant is unusable with this configuration (a changed
                # google.token_uri, say): the operator's to fix, so no owner is emailed.
                raise AuthFailed(
                    google_connect.reconnect_message(str(exc)), url=connection.url
                ) from exc
        raise NotImplementedError(f"provider {connection.provider} is not available yet")

    return factory
