"""Settings: read once from ``calsync.toml`` and ``CALSYNC_*`` environment variables.

Every key is documented in ``config.example.toml``. Environment variables win over the file;
a key inside a section is ``CALSYNC_<SECTION>__<KEY>`` (for example ``CALSYNC_SYNC__HORIZON_DAYS``).
A broken file or value raises :class:`ConfigError` naming the key and what to do.
"""

from __future__ import annotations

import difflib
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_CONFIG_FILE = Path("calsync.toml")


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and how to fix it."""


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class LogFormat(StrEnum):
    TEXT = "text"  # for people reading a terminal
    JSON = "json"  # one JSON object a line, for log collectors


class LoggingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: LogFormat = Field(
        LogFormat.TEXT, description="text for people, json for one object a line."
    )


class MailBackend(StrEnum):
    SMTP = "smtp"
    DIRECTORY = "directory"


class SyncSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    poll_interval_seconds: float = Field(
        300.0, ge=1, description="Time between polls of one calendar."
    )
    poll_jitter_seconds: float = Field(
        30.0, ge=0, description="Random spread added to each poll time."
    )
    horizon_days: int = Field(90, ge=1, le=730, description="How far ahead busy time is mirrored.")
    lease_seconds: float = Field(
        120.0, ge=1, description="How long a worker owns a calendar it polls."
    )
    tick_seconds: float = Field(
        5.0, gt=0, description="How often a worker looks for due calendars."
    )
    max_parallel_polls: int = Field(
        8, ge=1, le=64, description="Calendars polled at once per worker."
    )
    max_backoff_seconds: float = Field(
        3600.0, ge=1, description="Longest wait after repeated failures."
    )
    request_timeout_seconds: float = Field(
        30.0, gt=0, description="Timeout of one calendar request."
    )


class BookingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    link_grace_days: int = Field(
        14, ge=0, le=365, description="How long a manage link works after the last session."
    )
    write_attempts: int = Field(
        3, ge=1, le=10, description="Tries of a conditional write that keeps meeting owner edits."
    )


class WebSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manage_reads_per_minute: int = Field(
        120, ge=0, description="Page views per link and per client address a minute; 0: no limit."
    )
    manage_changes_per_minute: int = Field(
        20, ge=0, description="Change requests per link and per client address a minute; 0: none."
    )
    console_idle_minutes: int = Field(
        60, ge=1, description="A console session ends after this many minutes without a request."
    )
    console_session_hours: int = Field(
        12, ge=1, description="A console session ends this many hours after sign-in, whatever."
    )
    frame_ancestors: list[str] = Field(
        default_factory=list,
        description="Sites that may embed the booking page in a frame, e.g. "
        "['https://coach.example']; empty: no site may (the default).",
    )
    availability_threads: int = Field(
        2,
        ge=1,
        le=64,
        description="How many availability reads (the admin API's slots) one web process "
        "computes at once; more requests wait their turn. The work is CPU-bound Python, so "
        "more threads than cores only add contention.",
    )
    allow_private_caldav: bool = Field(
        False,
        description="Let owners connect (and sync now) CalDAV servers at loopback, private, "
        "link-local or other non-public addresses from the console; for a calendar server on "
        "this host or network. The CLI and admin API are never limited.",
    )

    @field_validator("frame_ancestors")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if not re.fullmatch(r"https?://[A-Za-z0-9.*-]+(:\d{1,5})?", origin):
                raise ValueError(
                    f"{origin!r} is not a site's origin like https://coach.example "
                    "(scheme and host, no path)"
                )
        return value


class SmtpSecurity(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    SSL = "ssl"


class MailSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: MailBackend = MailBackend.DIRECTORY
    from_address: str = "calsync@localhost"
    # ORGANIZER of the invites; default: the owner's address. Keep From aligned with it, or
    # receivers may distrust the invite.
    organizer_address: str | None = None
    directory: Path = Path("mail")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_security: SmtpSecurity = SmtpSecurity.NONE
    smtp_username: str | None = None
    smtp_password_env: str | None = Field(
        None, description="Name of the environment variable holding the SMTP password."
    )
    per_session: bool = Field(
        False, description="One email per session instead of one per change (picky clients)."
    )
    templates_dir: Path | None = Field(
        None, description="Folder with templates that replace the built-in ones, by name."
    )
    notify_owner_calendar_changes: bool = Field(
        True, description="Tell the customer when the owner moves or deletes a session."
    )
    claim_seconds: int = Field(
        300,
        ge=30,
        le=3600,
        description=(
            "How long a worker holds a message it is sending: a worker killed mid-send leaves "
            "that message to another worker after this long. Longer than an SMTP send takes."
        ),
    )


class GoogleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str | None = None
    client_secret: str | None = None
    api_endpoint: str | None = Field(
        None, description="Only for tests and proxies: where the Calendar v3 API is reached."
    )
    auth_uri: str = Field(
        "https://accounts.google.com/o/oauth2/auth",
        description="Only for tests and proxies: Google's consent screen.",
    )
    token_uri: str = Field(
        "https://oauth2.googleapis.com/token",
        description="Only for tests and proxies: where OAuth codes and refresh tokens are sent.",
    )


class PaymentProvider(StrEnum):
    STRIPE = "stripe"


class PaymentSettings(BaseModel):
    """The ``[payments]`` section: where reschedule fees are charged and refunds paid.

    Only the *names* of the environment variables that hold Stripe's keys are settings; the
    keys themselves are read from the environment when needed, never logged nor stored."""

    model_config = ConfigDict(extra="forbid")

    provider: PaymentProvider = PaymentProvider.STRIPE
    secret_key_env: str = Field(
        "STRIPE_SECRET_KEY", description="Name of the environment variable holding sk_… ."
    )
    publishable_key_env: str = Field(
        "STRIPE_PUBLISHABLE_KEY",
        description="Name of the environment variable holding pk_… (shown to Stripe.js).",
    )
    webhook_secret_env: str = Field(
        "STRIPE_WEBHOOK_SECRET",
        description="Name of the environment variable holding the webhook's whsec_… .",
    )
    api_base: str | None = Field(
        None, description="Only for tests and the demo: where the Stripe API is reached."
    )
    js_url: str = Field(
        "https://js.stripe.com/v3/",
        description="Stripe.js; only tests and the demo point it elsewhere (localstripe's mock).",
    )
    hold_minutes: int = Field(
        15, ge=1, le=120, description="How long chosen times are held while the customer pays."
    )
    webhook_tolerance_seconds: int = Field(
        300, ge=1, le=3600, description="How old a webhook's signed timestamp may be."
    )
    request_timeout_seconds: float = Field(
        20.0, gt=0, description="Timeout of one request to Stripe."
    )

    @field_validator("secret_key_env", "publishable_key_env", "webhook_secret_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(
                "must be the NAME of an environment variable (like STRIPE_SECRET_KEY), "
                "never the key itself"
            )
        return value

    def _read(self, name: str, what: str) -> str:
        value = os.environ.get(name, "").strip()
        if not value:
            raise ConfigError(
                f"payments: the environment variable {name} is empty; set it to the Stripe "
                f"{what} (payments.{what.replace(' ', '_')}_env names the variable)."
            )
        return value

    def secret_key(self) -> str:
        """Stripe's secret key from the environment; raises ConfigError when it is unset."""
        return self._read(self.secret_key_env, "secret key")

    def publishable_key(self) -> str:
        return self._read(self.publishable_key_env, "publishable key")

    def webhook_secret(self) -> str:
        return self._read(self.webhook_secret_env, "webhook secret")


class Settings(BaseSettings):
    """All settings of one calsync process."""

    model_config = SettingsConfigDict(
        env_prefix="CALSYNC_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    database_url: str = "sqlite:///calsync.db"
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str | None = Field(
        None, description="Key that encrypts stored passwords and tokens."
    )
    admin_api_key: str | None = None
    log_level: LogLevel = LogLevel.INFO
    redis_url: str | None = Field(
        None, description="Redis for the manage page's rate limits; unset: the database."
    )
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Port where `calsync worker` serves /metrics; unset: none.",
    )
    metrics_host: str = Field("127.0.0.1", description="Address the worker's metrics port binds.")
    logging: LoggingSettings = LoggingSettings()
    sync: SyncSettings = SyncSettings()
    bookings: BookingSettings = BookingSettings()
    web: WebSettings = WebSettings()
    mail: MailSettings = MailSettings()
    google: GoogleSettings = GoogleSettings()
    # None: calsync charges nothing and the page says any fee is due to the owner directly.
    payments: PaymentSettings | None = None

    @field_validator("base_url")
    @classmethod
    def _base_url_is_http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _database_url_is_supported(cls, value: str) -> str:
        if value.startswith("postgresql://"):
            # psycopg 3 is the driver we ship; plain postgresql:// would pick psycopg2.
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        if not value.startswith(("sqlite://", "postgresql+psycopg://")):
            raise ValueError("must be a sqlite:///path or postgresql://user@host/db URL")
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key_is_long_enough(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 32:
            raise ValueError("must be at least 32 characters; generate one with `calsync secret`")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML values arrive as init kwargs; the environment must win over them.
        return env_settings, init_settings

    def require_secret_key(self) -> str:
        if not self.secret_key:
            raise ConfigError(
                "secret_key is not set, and it is needed to store passwords encrypted. Add "
                f'secret_key = "{secrets.token_urlsafe(32)}" to calsync.toml '
                "or set CALSYNC_SECRET_KEY (keep it safe: it decrypts stored passwords)."
            )
        return self.secret_key


def _sections() -> tuple[str, ...]:
    """The ``[section]`` names: every field of Settings that is itself a settings model (read
    from the model, so a new section is known to the messages below without a list to keep)."""
    return tuple(name for name in Settings.model_fields if _section_model(name) is not None)


def _section_model(name: str) -> type[BaseModel] | None:
    """The model of section ``name`` (also when it is optional, like ``[payments]``)."""
    annotation = Settings.model_fields[name].annotation
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _env_name(loc: tuple[Any, ...]) -> str:
    return "CALSYNC_" + "__".join(str(part).upper() for part in loc)


def _describe(error: ErrorDetails, from_env: set[tuple[str, ...]]) -> str:
    loc = tuple(str(part) for part in error["loc"])
    key = ".".join(loc)
    if loc[:2] in from_env or loc[:1] in from_env:
        # The value came from the environment: name the variable, not the file.
        got = error.get("input")
        return f"the environment variable {_env_name(loc)}: {error['msg']} (got {got!r})"
    if error["type"] == "extra_forbidden":
        top = loc[-1]
        if len(loc) == 2 and loc[0] in _sections() and top in Settings.model_fields:
            return (
                f"{key}: unknown key; {top} is a top-level key, so put it above the first "
                f"[section] of the file (TOML reads every key after [{loc[0]}] as part of it)"
            )
        return f"{key}: unknown key (see config.example.toml for the keys calsync knows)"
    return f"{key}: {error['msg']} (got {error.get('input')!r})"


def _known_env_names() -> list[str]:
    sections = _sections()
    names = [f"CALSYNC_{name.upper()}" for name in Settings.model_fields if name not in sections]
    for section in sections:
        model = _section_model(section)
        for name in getattr(model, "model_fields", {}):
            names.append(f"CALSYNC_{section.upper()}__{name.upper()}")
    return [*names, "CALSYNC_CONFIG"]


def unknown_env_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning for each ``CALSYNC_…`` variable calsync does not read, naming the closest
    known one (a misspelled variable is otherwise silently ignored)."""
    known = _known_env_names()
    warnings = []
    for name in sorted(environ):
        if not name.startswith("CALSYNC_") or name in known or name.startswith("CALSYNC_TEST"):
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else " (see config.example.toml)"
        warnings.append(f"the environment variable {name} is not one calsync reads{hint}")
    return warnings


def load_settings(path: Path | None = None) -> Settings:
    """Read settings from ``path`` (default ``calsync.toml`` if it exists) and the environment.

    Raises ConfigError for an unreadable file, invalid TOML, unknown keys or invalid values.
    """
    explicit = path is not None or "CALSYNC_CONFIG" in os.environ
    path = path or Path(os.environ.get("CALSYNC_CONFIG", DEFAULT_CONFIG_FILE))
    values: dict[str, Any] = {}
    if path.exists():
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"{path} is not valid TOML: {exc}. Fix that line and retry."
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} cannot be read: {exc}") from None
    elif explicit:
        raise ConfigError(f"config file {path} does not exist (copy config.example.toml to start)")
    from_env = {
        tuple(part.lower() for part in name.removeprefix("CALSYNC_").split("__"))
        for name in os.environ
        if name.startswith("CALSYNC_")
    }
    try:
        return Settings(**values)
    except ValidationError as exc:
        where = f"{path}: " if path.exists() else "configuration: "
        problems = "; ".join(
            text if text.startswith("the environment variable") else where + text
            for text in (_describe(e, from_env) for e in exc.errors())
        )
        raise ConfigError(problems) from None
