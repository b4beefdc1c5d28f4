"""Whether the console may make the server call a calendar address an owner typed.

An invited owner is not the operator: without this check the connect form and "Sync now"
would let them make the server request anything it can reach (its own admin ports, the
database host, cloud metadata at 169.254.169.254). The host is resolved as the HTTP client
will resolve it, and every address it resolves to must be a public one, unless the operator
sets ``web.allow_private_caldav`` (a calendar server on the same host or network). The CLI
and the admin API are the operator's and are not checked.

Limit, said plainly: a name could resolve differently between this check and the request
(DNS rebinding); the check still stops typed addresses and names that plainly point inside.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


def is_inside(address: str) -> bool:
    """Whether one IP address is on the server's own network rather than the internet."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone ("fe80::1%eth0")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # "::ffff:127.0.0.1" is 127.0.0.1
    return (
        ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_multicast
        or ip.is_unspecified
        or ip.is_reserved
    )


def points_inside(url: str) -> bool:
    """Whether the URL's host resolves to any address on the server's own network.

    A host that does not resolve is not "inside": the request then fails on its own with
    "could not be reached"."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return False
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return False  # a bad port; the request fails on its own
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    return any(is_inside(str(info[4][0])) for info in found)
