"""Every web request: a request id (taken from a sane ``X-Request-ID`` or made, returned in
the answer and bound to the log context of the work it causes), and the HTTP metrics by
route template; ``GET /metrics`` serves the Prometheus text (no key: it names no owner,
customer or token)."""

from __future__ import annotations

import re
import time
import uuid

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from calsync.observe import metrics
from calsync.observe.logs import log_context

REQUEST_ID_HEADER = "X-Request-ID"
# What a proxy's id usually looks like (a UUID, a hex or base64 string); anything else is
# replaced, so a log line never carries what a client chose to put there.
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"  # no route: raw paths would carry tokens and make endless series

router = APIRouter(tags=["health"])


def request_id_of(headers: Headers) -> str:
    incoming = headers.get(REQUEST_ID_HEADER, "")
    return incoming if _SANE_ID.fullmatch(incoming) else uuid.uuid4().hex


class RequestTelemetry:
    """Outermost middleware: the request id and the HTTP metrics of every request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(Headers(scope=scope))
        status = 500  # what the client gets when the app fails before answering
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        try:
            with log_context(request_id=request_id):
                await self.app(scope, receive, send_with_id)
        finally:
            # Starlette's router leaves the matched route in the scope: its template, not the
            # path (which may hold a manage token).
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
            metrics.HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - started)


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics(request: Request) -> Response:
    """The Prometheus text of this process (or of all, in multi-process mode) and the states
    read from the database."""
    registry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
