"""Turning the manage page's views into HTML answers with its security headers.

Every page, including the errors, gets the same headers: a strict Content-Security-Policy (our
own stylesheet and script only, forms post only to us, no framing), ``Referrer-Policy:
no-referrer`` (the token in the URL never reaches another site), ``Cache-Control: no-store``.
Links are paths under the configured base URL's path, never built from the Host header.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import jinja2
from fastapi import Request, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from calsync.config import Settings

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Frame-Options": "DENY",
}
STATIC_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "public, max-age=3600",
}


def path_prefix(settings: Settings) -> str:
    """The path the app lives under, from ``base_url`` (``""`` at the root)."""
    return urlsplit(settings.base_url).path.rstrip("/")


@functools.cache
def _asset_version(name: str) -> str:
    data = resources.files("calsync.web").joinpath("static", name).read_bytes()
    return hashlib.sha256(data).hexdigest()[:12]


@functools.cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("calsync.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(settings: Settings, name: str, **values: Any) -> bytes:
    return _render_at(path_prefix(settings), name, **values)


def _render_at(prefix: str, name: str, **values: Any) -> bytes:
    def static(asset: str) -> str:
        # Versioned by content, so a cached old script never meets a new page.
        return f"{prefix}/static/{asset}?v={_asset_version(asset)}"

    template = _templates().get_template(name)
    return template.render(static=static, **values).encode()


def answer(
    request: Request, body: bytes, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """The page with the manage headers; a HEAD gets the same headers and no body."""
    all_headers = PAGE_HEADERS | (headers or {})
    if request.method == "HEAD":
        # The headers a GET would get, without the body, whatever server runs the app.
        all_headers["Content-Length"] = str(len(body))
        body = b""
    return Response(body, status_code=status, headers=all_headers, media_type="text/html")


def see_other(location: str) -> Response:
    """The redirect after a change (POST-redirect-GET), to a path on this site."""
    return Response(status_code=303, headers=PAGE_HEADERS | {"Location": location})


@functools.cache
def _invalid_page(prefix: str) -> bytes:
    return _render_at(prefix, "link_invalid.html")


def invalid_page(settings: Settings) -> bytes:
    """The one answer to every token that opens nothing: it depends on nothing in the request."""
    return _invalid_page(path_prefix(settings))


def message_page(
    request: Request,
    settings: Settings,
    status: int,
    title: str,
    message: str,
    *,
    back: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A short page saying what happened and what to do, with a way back to the booking."""
    body = render(settings, "manage_message.html", title=title, message=message, back=back)
    return answer(request, body, status, headers)


class StaticAssets(StaticFiles):
    """The page's stylesheet and script (CSP ``'self'``), with nosniff and caching headers."""

    def __init__(self) -> None:
        super().__init__(packages=[("calsync.web", "static")])

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(STATIC_HEADERS)
        return response
