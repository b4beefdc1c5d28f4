"""Routes of the public booking page. The steps are GETs that change nothing (the picks travel
in the query); the booking is one POST (``book``), checked as ``book/forms.py`` says and made
by the same engine as ``calsync book`` (``bookings/packages.py``): fresh busy time, the owner's
lock, all sessions or none, the confirmation emails."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute

from calsync.bookings.event_types import AvailabilityUnknown, InvalidInput
from calsync.bookings.packages import BookingRequest, CalendarWriteFailed, SlotTaken, book
from calsync.config import Settings
from calsync.policy.packages import spacing_problem, spacing_problems
from calsync.store.models import Actor
from calsync.sync.fresh_busy import BusyTimeNotFresh
from calsync.web.book import forms, wording
from calsync.web.book.pages import (
    Visit,
    details_page,
    find_owner,
    not_found,
    open_visit,
    owner_page,
    package_page,
    result_page,
    times_page,
)
from calsync.web.deps import DbDep, SettingsDep
from calsync.web.manage.forms import (
    FormProblems,
    FormRefused,
    PostedForm,
    check_origin,
    posted_form,
)
from calsync.web.manage.rate_limit import Budget, SharedLimiter
from calsync.web.manage.render import PAGE_HEADERS, message_page

log = logging.getLogger(__name__)


# An owner's page serves many customers: it may take this many times one address's budget.
OWNER_BUDGET_FACTOR = 10


def limit_booking_requests(request: Request) -> None:
    """Every booking page request counts under the client's address (the manage page's shared
    limiter and budgets) and then under the owner, whose budget is ``OWNER_BUDGET_FACTOR``
    times larger: one address that is over its budget is refused before it is counted
    against the owner, so it cannot use up the page for everyone. RateLimited is answered
    429. Not async: it waits for the database."""
    limiter: SharedLimiter = request.app.state.manage_limiter
    budget = Budget.READ if request.method in ("GET", "HEAD") else Budget.CHANGE
    owner = str(request.path_params.get("owner_slug", ""))[:100]
    client = request.client.host if request.client else "unknown"
    db = request.app.state.db
    limiter.check(db, budget, f"address:{client}")
    limiter.scaled(OWNER_BUDGET_FACTOR).check(db, budget, f"book-owner:{owner}")


def allow_framing(settings: Settings, response: Response) -> None:
    """``web.frame_ancestors`` may embed the booking page (default: no site may, as the manage
    page; that one never can, its URL is a secret)."""
    sites = settings.web.frame_ancestors
    if not sites:
        return
    policy = PAGE_HEADERS["Content-Security-Policy"].replace(
        "frame-ancestors 'none'", "frame-ancestors " + " ".join(sites)
    )
    response.headers["Content-Security-Policy"] = policy
    if "x-frame-options" in response.headers:
        del response.headers["x-frame-options"]


class BookingPageRoute(APIRoute):
    """Every booking page answer gets the framing the owner allows."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def framed(request: Request) -> Response:
            response = await handler(request)
            allow_framing(request.app.state.settings, response)
            return response

        return framed


router = APIRouter(
    tags=["booking page"],
    include_in_schema=False,
    dependencies=[Depends(limit_booking_requests)],
    route_class=BookingPageRoute,
)
READ = ["GET", "HEAD"]


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text.strip()) if text else None
    except ValueError:
        return None


@router.api_route("/b/{owner_slug}", methods=READ)
def owner_event_types(
    owner_slug: str, request: Request, db: DbDep, settings: SettingsDep
) -> Response:
    found = find_owner(db, owner_slug)
    if found is None or not found[1]:
        return not_found(request, settings)
    return owner_page(request, settings, *found)


@router.api_route("/b/{owner_slug}/{slug}", methods=READ)
def choose_package(
    owner_slug: str, slug: str, request: Request, db: DbDep, settings: SettingsDep
) -> Response:
    visit = open_visit(request, settings, db, owner_slug, slug, request.query_params.get("tz"))
    if visit is None:
        return not_found(request, settings)
    return package_page(visit)


@router.api_route("/b/{owner_slug}/{slug}/times", methods=READ)
def choose_times(
    owner_slug: str, slug: str, request: Request, db: DbDep, settings: SettingsDep
) -> Response:
    """One time per session; with all of them chosen, the details step."""
    params = request.query_params
    visit = open_visit(request, settings, db, owner_slug, slug, params.get("tz"))
    if visit is None:
        return not_found(request, settings)
    size = forms.package_size(params, [p.sessions for p in visit.packages()])
    if size is None:
        return package_page(visit, problem="Please choose one of the packages.", status=422)
    picks = forms.picks(params)[:size]
    first = _day(params.get("from"))
    problem = spacing_problems(visit.offer, picks, _zone(visit))
    if problem:
        return times_page(
            visit, size, picks[:-1], first, problem=wording.spacing_words(problem), status=422
        )
    if len(picks) < size:
        return times_page(visit, size, picks, first)
    return details_page(visit, size, picks)


def _zone(visit: Visit) -> ZoneInfo:
    """The event type's zone: the one its days (``one_per_day``) are counted in."""
    return ZoneInfo(visit.event_type.timezone)


def _fitting(visit: Visit, picks: list[datetime]) -> list[datetime]:
    """The picks kept after a refusal: each in turn, when it keeps the spacing rule with those
    kept before it."""
    kept: list[datetime] = []
    for pick in picks:
        if spacing_problem(visit.offer, kept, _zone(visit), candidate=pick) is None:
            kept.append(pick)
    return kept


@router.post("/b/{owner_slug}/{slug}/book")
def submit(
    owner_slug: str,
    slug: str,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    posted: PostedForm = Depends(posted_form),
) -> Response:
    """Book the package: on success the sessions and the personal link; a time taken in the
    meantime sends the customer back to the times with the others kept and that one marked."""
    fields = posted.fields
    visit = open_visit(request, settings, db, owner_slug, slug, fields.get("tz"))
    if visit is None:
        return not_found(request, settings)
    try:
        check_origin(settings, request.headers)
        if posted.problem:
            raise FormRefused(400, posted.problem + " Nothing was booked.")
        key = forms.check_submit(settings, visit.event_type, fields)
    except (FormRefused, FormProblems) as exc:
        status = exc.status
        message = exc.message if isinstance(exc, FormRefused) else str(exc)
        log.warning("booking page: submit refused for %s: %s", visit.event_type.slug, message)
        return message_page(
            request, settings, status, "Nothing was booked", message, back=visit.base
        )
    sizes = [p.sessions for p in visit.packages()]
    size = forms.package_size(fields, sizes)
    picks = forms.picks(fields)
    if size is not None and len(picks) == size:
        # Checked here too (the engine checks it again under the lock) so that the times
        # that keep the rule are kept and only the one breaking it is chosen again.
        problem = spacing_problems(visit.offer, picks, _zone(visit))
        if problem:
            kept = _fitting(visit, picks)
            dropped = next(p for p in picks if p not in kept)
            return times_page(
                visit,
                size,
                kept,
                dropped.astimezone(visit.zone).date(),
                problem=wording.spacing_words(problem),
                status=422,
            )
    if size is None or len(picks) != size:
        return message_page(
            request,
            settings,
            422,
            "Nothing was booked",
            f"Choose one of the packages ({', '.join(map(str, sizes))} sessions) and one time "
            "for each of its sessions. Nothing was booked.",
            back=visit.base,
        )
    try:
        details = forms.details(fields, visit.offer.max_stakeholders)
    except FormProblems as exc:
        # Shown back to be corrected, without what could not be kept (never stored).
        values = {name: _printable(fields.get(name) or "") for name in ("name", "email")}
        values["notes"] = (fields.get("notes") or "")[: forms.MAX_NOTES]
        stakeholders = [_printable(v) for v in fields.getlist("stakeholder")]
        return details_page(
            visit,
            size,
            picks,
            problems=exc.problems,
            values=values,
            stakeholders=stakeholders,
            status=422,
        )
    # The payment seam: a package with a price (``visit.price(size)``) is booked here and
    # paid to the owner directly, as the details step says ("Nothing is charged on this
    # page"). When the payments work is merged, a
    # priced package with payments configured goes to its payment step instead of straight
    # to ``book``: the sessions held for the customer while Stripe.js takes the payment (the
    # manage page's fee step is the model), and the events written and the confirmation sent
    # once the webhook or the return URL has re-read the paid PaymentIntent. Everything above
    # (origin, CSRF, idempotency key, details) stays as it is.
    request_ = BookingRequest(
        event_type=visit.event_type.id,
        customer_name=details.name,
        customer_email=details.email,
        starts=tuple(picks),
        customer_timezone=visit.zone.key,
        stakeholders=details.stakeholders,
        actor=Actor.CUSTOMER,
        idempotency_key=key,
        notes=details.notes,
    )
    try:
        result = book(db, settings, request_)
    except SlotTaken as exc:
        return _taken(visit, size, picks, exc)
    except InvalidInput as exc:
        problem = "; ".join(message for _, message in exc.problems)
        kept = _fitting(visit, picks)
        return times_page(
            visit, size, kept, None, problem=wording.spacing_words(problem), status=422
        )
    except (AvailabilityUnknown, BusyTimeNotFresh, CalendarWriteFailed) as exc:
        log.warning("booking page: %s not booked: %s", visit.event_type.slug, exc)
        return message_page(
            request,
            settings,
            503,
            "Nothing was booked",
            "The calendar could not be checked or written just now, so nothing was booked. "
            "Please try again in a minute.",
            back=visit.base,
        )
    log.info("booking page: booking %s made on %s", result.booking.id, visit.event_type.slug)
    return result_page(visit, result)


def _printable(text: str) -> str:
    return "".join(c for c in text[:400] if c.isprintable())


def _taken(visit: Visit, size: int, picks: list[datetime], exc: SlotTaken) -> Response:
    """Back to the times with the others kept: a time taken meanwhile is marked (409); one
    that was never offered (past, outside the hours) is only explained (422)."""
    taken = exc.start
    kept = [p for p in picks if p != taken]
    if exc.why in wording.TAKEN:
        return times_page(
            visit,
            size,
            kept,
            taken.astimezone(visit.zone).date(),
            problem=wording.taken_words(visit.when(taken)),
            taken=taken,
            status=409,
        )
    return times_page(
        visit,
        size,
        kept,
        None,
        problem=wording.not_offered_words(visit.when(taken), exc.why, taken, visit.now),
        status=422,
    )
