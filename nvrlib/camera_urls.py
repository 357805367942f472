"""Whether a pull camera's URL may point at this machine or its link-local network.

An admin who can add pull cameras could otherwise probe the hub's own ports
(``rtsp://127.0.0.1:22`` answers "refused" or "timed out"). Loopback (127.0.0.0/8, ::1),
link-local (169.254.0.0/16, fe80::/10) and unspecified (0.0.0.0, ::, which reach this machine)
addresses are refused unless the hub's config says ``allow_local_camera_urls = true``. A name
counts by what it resolves to. The web app checks when a camera is added or edited, the hub
again before it pulls (a name may resolve differently by then).

A name is resolved once per ffmpeg run, checked, and handed to ffmpeg as the address it
resolved to (``pinned_url``): otherwise ffmpeg resolves it again, and a name whose DNS answers
change (DNS rebinding, a TTL of 0) could pass the check and then reach 127.0.0.1, at once or
at any of the runs after a camera's ffmpeg restarts. ``rtsps://`` keeps its name: the camera's
certificate is checked against it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

# The config key (top level of the hub's TOML file) and the flag that allow such URLs.
ALLOW_KEY = "allow_local_camera_urls"
ALLOW_FLAG = "--allow-local-camera-urls"
LOCAL_NETWORKS = tuple(ipaddress.ip_network(net) for net in (
    "127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10", "0.0.0.0/32", "::/128"))

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class LocalCameraURL(ValueError):
    """A camera URL that reaches a loopback or link-local address while that is not allowed."""


class UnresolvedCameraHost(ValueError):
    """A camera URL whose host name resolves to no address (now)."""


def is_local_address(address: IPAddress) -> bool:
    """Tell whether ``address`` is loopback, link-local or unspecified (IPv4-mapped too)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in LOCAL_NETWORKS)


def resolve(host: str) -> list[IPAddress]:
    """Return the addresses ``host`` (a name or an address) stands for; none if it resolves not."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, ValueError):
        return []  # an unknown name reaches nothing; the hub checks again before it pulls
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def local_target(url: str) -> IPAddress | None:
    """Return the first loopback or link-local address the URL's host reaches, if any."""
    host = urlsplit(url).hostname or ""
    return next((address for address in resolve(host) if is_local_address(address)), None)


def check_camera_url(url: str, allow_local: bool) -> None:
    """Raise LocalCameraURL if ``url`` reaches a local address and ``allow_local`` is false."""
    if allow_local:
        return
    _refuse_local(local_target(url))


def _refuse_local(address: IPAddress | None) -> None:
    if address is not None:
        raise LocalCameraURL(
            f"the camera's host is a loopback or link-local address ({address}); to pull from "
            f"one, set {ALLOW_KEY} = true in the hub's config file (or start the hub and the "
            f"web app with {ALLOW_FLAG})")


def pinned_url(url: str, allow_local: bool, attempt: int = 0,
               resolver: Callable[[str], list[IPAddress]] = resolve) -> str:
    """Resolve the URL's host now, check it, and return the URL naming that address instead.

    Raise LocalCameraURL (a local address, not allowed) or UnresolvedCameraHost. ``attempt``
    picks among several addresses (the runs after a failed one try the next), as ffmpeg
    itself would try them in turn. ``resolver`` is the system's unless a test gives one.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    addresses = list(dict.fromkeys(resolver(host)))  # in the resolver's order, no repeats
    if not addresses:
        raise UnresolvedCameraHost(f"the camera's host {host!r} resolves to no address")
    if not allow_local:
        _refuse_local(next((a for a in addresses if is_local_address(a)), None))
    if parts.scheme.lower() == "rtsps" or _is_literal(host):
        return url  # a certificate names the host; an address needs no pinning
    address = addresses[attempt % len(addresses)]
    userinfo, at, hostport = parts.netloc.rpartition("@")
    port = hostport.rpartition(":")[2] if parts.port is not None else ""
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{userinfo}{at}{literal}" + (f":{port}" if port else "")
    # the rest of the URL as it was, byte for byte (urlunsplit would drop an empty "?")
    start = url.index("//") + 2  # urlsplit found a netloc, so the URL has "//" before it
    return url[:start] + netloc + url[start + len(parts.netloc):]


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
