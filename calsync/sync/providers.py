"""Opening the provider for a stored calendar connection (decrypting its credentials).

A long-lived factory (the worker's, ``pooled=True``) lets the CalDAV providers it opens
share a ``ClientPool``: the polls of a server reuse their clients and kept-alive connections
instead of making new ones each time; ``close()`` closes them."""

from __future__ import annotations

from collections.abc import Callable

from calsync.calendars.base import CalendarProvider
from calsync.calendars.caldav.provider import CalDAVProvider
from calsync.calendars.caldav.wire import ClientPool
from calsync.calendars.errors import AuthFailed, GrantRevoked
from calsync.config import Settings
from calsync.secretbox import SecretBox, SecretKeyMismatch
from calsync.store.models import CalendarConnection, ProviderKind

ProviderFactory = Callable[[CalendarConnection], CalendarProvider]
#: Decrypted passwords a pooled opener keeps (by their ciphertext) before starting afresh.
PASSWORDS_KEPT = 4096


class ProviderOpener:
    """Opens the right provider for a connection row; ``close()`` closes the pooled clients."""

    def __init__(self, settings: Settings, *, pooled: bool = False) -> None:
        self.settings = settings
        self.pool = ClientPool() if pooled else None
        self._box: SecretBox | None = None
        self._passwords: dict[str, str] = {}

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()

    def _decrypt(self, connection: CalendarConnection) -> str:
        secret = connection.secret_encrypted
        assert secret is not None
        if self.pool is None:
            return SecretBox(self.settings.require_secret_key()).decrypt(secret)
        # A pooled opener polls the same calendars again and again: decrypt each secret once
        # (its clients hold the passwords anyway).
        password = self._passwords.get(secret)
        if password is None:
            if self._box is None:
                self._box = SecretBox(self.settings.require_secret_key())
            password = self._box.decrypt(secret)
            if len(self._passwords) >= PASSWORDS_KEPT:
                self._passwords.clear()
            self._passwords[secret] = password
        return password

    def __call__(self, connection: CalendarConnection) -> CalendarProvider:
        settings = self.settings
        password = None
        if connection.secret_encrypted:
            try:
                password = self._decrypt(connection)
            except SecretKeyMismatch as exc:
                raise AuthFailed(str(exc), url=connection.url) from exc
        if connection.provider is ProviderKind.CALDAV:
            return CalDAVProvider(
                connection.url,
                username=connection.username,
                password=password,
                timeout=settings.sync.request_timeout_seconds,
                pool=self.pool,
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


def open_provider(settings: Settings, *, pooled: bool = False) -> ProviderOpener:
    """A factory that opens the right provider for a connection row; with ``pooled``, one
    that keeps CalDAV clients for reuse until its ``close()``."""
    return ProviderOpener(settings, pooled=pooled)
