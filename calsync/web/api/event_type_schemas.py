"""Request and response bodies of the event-type and availability routes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    ValidationInfo,
    field_validator,
)

from calsync.bookings.event_types import page_url
from calsync.input_rules import Count, MultiLine, OneLine
from calsync.policy.change_policy import (
    FeeKind,
    Permission,
    ReasonRule,
    policy_from_data,
    policy_to_data,
)
from calsync.policy.packages import (
    MAX_PACKAGE,
    MAX_STAKEHOLDERS,
    PackageOffer,
    PageOffer,
    offer_from_data,
    offer_to_data,
)
from calsync.store.models import EventType
from calsync.web.schemas import (
    BodyId,
    Buffer,
    DailyCap,
    Day,
    Duration,
    Email,
    HorizonDays,
    Instant,
    Money,
    Notice,
    Request,
    Slug,
    Title,
    WallTime,
    ZoneName,
)

# -- event types ----------------------------------------------------------------------------------


class TimeRangeIn(Request):
    start: WallTime = Field(examples=["09:00"])
    end: WallTime = Field(examples=["17:00"], description="24:00 ends the range at midnight.")

    @field_validator("start")
    @classmethod
    def _start_is_in_the_day(cls, value: str) -> str:
        if value == "24:00":
            raise ValueError("a range cannot start at 24:00; start the next day at 00:00")
        return value

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, value: str, info: ValidationInfo) -> str:
        start = info.data.get("start")
        if start is not None and value != "24:00" and value <= start:
            raise ValueError(
                f"must be after the start ({start}); a range cannot cross midnight, so end it "
                "at 24:00 and continue at 00:00 the next day"
            )
        return value


class TimeRangeOut(BaseModel):
    start: str
    end: str


class ActionRuleModel(Request):
    permission: Permission = Permission.ANYTIME
    notice_minutes: Notice | None = Field(
        None, description="With permission 'until': how long before a session it ends."
    )
    reason: ReasonRule = ReasonRule.OFF


class FeeModel(Request):
    kind: FeeKind
    amount: Money = Field(description="Per session; a percentage of its value with 'percent'.")


class PolicyModel(Request):
    cancel: ActionRuleModel = Field(default_factory=ActionRuleModel)
    reschedule: ActionRuleModel = Field(default_factory=ActionRuleModel)
    max_reschedules: Count | None = Field(None, description="Per session; null: no limit.")
    reschedule_fee: FeeModel | None = None
    cancel_refund: FeeModel | None = None
    text: MultiLine = Field("", max_length=5000)


class PackageModel(Request):
    sessions: int = Field(ge=1, le=MAX_PACKAGE, examples=[3])
    price: Money = Field(description="Price of the whole package.", examples=["250.00"])


class BookingPageModel(Request):
    """The public booking page ``/b/<owner slug>/<event type slug>``."""

    public: bool = Field(False, description="Whether the page takes bookings.")
    packages: list[PackageModel] = Field(
        default_factory=list,
        description="What customers choose from; [] = one session at the event type's price.",
    )
    min_days_apart: int = Field(
        0, ge=0, le=365, description="Sessions of one package start at least N days apart."
    )
    one_per_day: bool = Field(False, description="At most one session of a package per day.")
    max_stakeholders: int = Field(
        0, ge=0, le=MAX_STAKEHOLDERS, description="How many other people customers may add."
    )

    def offer(self) -> PageOffer:
        return PageOffer(
            public=self.public,
            packages=tuple(
                sorted(
                    (PackageOffer(p.sessions, p.price) for p in self.packages),
                    key=lambda o: o.sessions,
                )
            ),
            min_days_apart=self.min_days_apart,
            one_per_day=self.one_per_day,
            max_stakeholders=self.max_stakeholders,
        )


WeeklyHoursIn = dict[Day, list[TimeRangeIn]]
DateOverridesIn = dict[date, list[TimeRangeIn]]


class EventTypeCreate(Request):
    owner_email: Email
    slug: Slug = Field(examples=["intro-call"])
    title: Title
    duration_minutes: Duration
    slot_step_minutes: Duration | None = Field(None, description="Default: the duration.")
    timezone: ZoneName | None = Field(None, description="Default: the owner's zone.")
    weekly_hours: WeeklyHoursIn = Field(
        description="Working hours per weekday in the event type's zone; a missing day is closed.",
        examples=[{"mon": [{"start": "09:00", "end": "17:00"}]}],
    )
    date_overrides: DateOverridesIn = Field(
        default_factory=dict,
        description="Hours of single dates, replacing their weekday's; [] closes the date.",
        examples=[{"2026-12-24": []}],
    )
    buffer_before_minutes: Buffer = 0
    buffer_after_minutes: Buffer = 0
    minimum_notice_minutes: Notice = 0
    horizon_days: HorizonDays = 60
    daily_cap: DailyCap | None = None
    conflict_calendar_ids: list[BodyId] = Field(
        default_factory=list,
        description="Calendars whose busy time blocks slots; [] = the owner's conflicts/both.",
    )
    booking_calendar_id: BodyId | None = None
    price: Money = Decimal(0)
    currency: OneLine = Field("EUR", max_length=3)
    policy: PolicyModel = Field(default_factory=PolicyModel)
    booking_page: BookingPageModel = Field(default_factory=BookingPageModel)


# PATCH: a field that is left out keeps its value; these may not be set to null.
_REQUIRED_ON_UPDATE = (
    "owner_email",
    "slug",
    "title",
    "duration_minutes",
    "timezone",
    "weekly_hours",
    "date_overrides",
    "buffer_before_minutes",
    "buffer_after_minutes",
    "minimum_notice_minutes",
    "horizon_days",
    "conflict_calendar_ids",
    "price",
    "currency",
    "policy",
    "booking_page",
)


class EventTypeUpdate(Request):
    """Only the fields given change. ``policy`` is merged into the current policy (give just
    ``{"policy": {"text": "…"}}`` to change the text); every other field is replaced whole."""

    owner_email: Email | None = None
    slug: Slug | None = None
    title: Title | None = None
    duration_minutes: Duration | None = None
    slot_step_minutes: Duration | None = None
    timezone: ZoneName | None = None
    weekly_hours: WeeklyHoursIn | None = None
    date_overrides: DateOverridesIn | None = None
    buffer_before_minutes: Buffer | None = None
    buffer_after_minutes: Buffer | None = None
    minimum_notice_minutes: Notice | None = None
    horizon_days: HorizonDays | None = None
    daily_cap: DailyCap | None = None
    conflict_calendar_ids: list[BodyId] | None = None
    booking_calendar_id: BodyId | None = None
    price: Money | None = None
    currency: OneLine | None = Field(None, max_length=3)
    policy: PolicyModel | None = None
    booking_page: BookingPageModel | None = Field(None, description="Replaced whole when given.")

    @field_validator(*_REQUIRED_ON_UPDATE, mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; leave the field out to keep its value")
        return value


def _ranges_out(data: dict[str, Any]) -> dict[str, list[TimeRangeOut]]:
    return {key: [TimeRangeOut(start=s, end=e) for s, e in ranges] for key, ranges in data.items()}


class EventTypeOut(BaseModel):
    id: int
    owner_id: int
    owner_email: str
    slug: str
    title: str
    duration_minutes: int
    slot_step_minutes: int
    timezone: str
    weekly_hours: dict[str, list[TimeRangeOut]]
    date_overrides: dict[str, list[TimeRangeOut]]
    buffer_before_minutes: int
    buffer_after_minutes: int
    minimum_notice_minutes: int
    horizon_days: int
    daily_cap: int | None
    conflict_calendar_ids: list[int]
    booking_calendar_id: int | None
    price: str = Field(examples=["49.00"])
    currency: str
    policy: PolicyModel
    booking_page: BookingPageModel
    page_url: str = Field(description="The public booking page (taking bookings when public).")
    created_at: Instant
    updated_at: Instant

    @classmethod
    def from_row(cls, row: EventType, base_url: str) -> EventTypeOut:
        # Through the policy's own types: stored data written by older code gets its defaults.
        policy = policy_to_data(policy_from_data(row.policy))
        return cls(
            id=row.id,
            owner_id=row.owner_id,
            owner_email=row.owner.email,
            slug=row.slug,
            title=row.title,
            duration_minutes=row.duration_minutes,
            slot_step_minutes=row.slot_step_minutes,
            timezone=row.timezone,
            weekly_hours=_ranges_out(row.weekly_hours),
            date_overrides=_ranges_out(row.date_overrides),
            buffer_before_minutes=row.buffer_before_minutes,
            buffer_after_minutes=row.buffer_after_minutes,
            minimum_notice_minutes=row.minimum_notice_minutes,
            horizon_days=row.horizon_days,
            daily_cap=row.daily_cap,
            conflict_calendar_ids=sorted(c.id for c in row.conflict_calendars),
            booking_calendar_id=row.booking_calendar_id,
            price=row.price,
            currency=row.currency,
            policy=PolicyModel.model_validate(policy),
            booking_page=BookingPageModel.model_validate(
                offer_to_data(offer_from_data(row.booking_page))
            ),
            page_url=page_url(base_url, row),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


# -- availability ---------------------------------------------------------------------------------


class SlotOut(BaseModel):
    start: Instant
    end: Instant


class AvailabilityOut(BaseModel):
    event_type_id: int
    timezone: str = Field(description="The zone the instants are written in.")
    start: Instant
    end: Instant
    slots: list[SlotOut]
