"""Opening the provider for a stored calendar connection (decrypting its credentials)."""

from __future__ import annotations

from collections.abc import Callable

from calsync.calendars.base import CalendarProvider
from calsync.calendars.caldav import CalDAVProvider
from calsync.calendars.errors import AuthFailed
from calsync.config import Settings
from calsync.secretbox import SecretBox, SecretKeyMismatch
from calsync.sync.models import CalendarConnection, ProviderKind

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
        raise NotImplementedError(f"provider {connection.provider} is not available yet")

    return factory
