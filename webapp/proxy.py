"""Reverse proxies the web app believes: X-Forwarded-For/-Proto count only from their addresses.

A proxy's address or network is listed in [webapp] trusted_proxies (TRUSTED_PROXIES); a request
whose peer is one of them gets werkzeug's ProxyFix (one hop: the proxy's own view of the client
and scheme), any other request has its forwarded headers removed, so nothing downstream can
read a header a client made up.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from werkzeug.middleware.proxy_fix import ProxyFix

from recorder.errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDED_HEADERS = ("HTTP_FORWARDED", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO",
                     "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_PREFIX")


class TrustedProxies:
    """A set of proxy addresses and networks; ``address in proxies`` tells if one is trusted."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.networks: tuple[Network, ...] = tuple(parse_network(e) for e in entries)

    def __contains__(self, address: object) -> bool:
        try:
            ip = ipaddress.ip_address(str(address).strip("[]"))
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)

    def __bool__(self) -> bool:
        return bool(self.networks)


def parse_network(entry: str) -> Network:
    """Parse one trusted_proxies entry (an address or a CIDR network); ConfigError if neither."""
    try:
        return ipaddress.ip_network(str(entry).strip(), strict=False)
    except ValueError:
        raise ConfigError(f"trusted_proxies: {entry!r} is not an IP address or network "
                          "(e.g. \"127.0.0.1\" or \"10.0.0.0/24\")") from None


def proxies_setting(value: Any) -> list[str]:
    """Validate the trusted_proxies setting: a list of addresses or networks (or one string)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = [part for part in value.replace(",", " ").split() if part]
    if isinstance(value, bool) or not isinstance(value, (list, tuple)):
        raise ConfigError("trusted_proxies must be a list of the reverse proxies' addresses or "
                          "networks, e.g. [\"127.0.0.1\"] (it is no longer a count)")
    for entry in value:
        parse_network(entry)
    return [str(entry).strip() for entry in value]


class ForwardedFromTrustedProxies:
    """WSGI middleware: ProxyFix for requests from trusted proxies, forwarded headers dropped
    from everyone else."""

    def __init__(self, app: Any, proxies: TrustedProxies) -> None:
        self.direct = app
        self.proxied = ProxyFix(app, x_for=1, x_proto=1)
        self.proxies = proxies

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        """Serve one request, believing its forwarded headers only if a trusted proxy sent it."""
        if environ.get("REMOTE_ADDR") in self.proxies:
            return self.proxied(environ, start_response)
        for header in FORWARDED_HEADERS:
            environ.pop(header, None)
        return self.direct(environ, start_response)
