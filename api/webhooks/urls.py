"""Which receiver URLs are allowed (SSRF, SPEC 11.1).

In production (unless WEBHOOK_ALLOW_PRIVATE) a URL must be ``https`` and every address
its host resolves to must be public: no loopback, private, link-local (cloud metadata),
shared, multicast, reserved or unspecified address, IPv4-mapped IPv6 included. The check
runs at registration and again at every attempt after resolving the name, and the attempt
connects to the address that was checked (no DNS rebinding between check and connect).
In development and test every http(s) URL is allowed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(ValueError):
    """The URL is refused; ``code`` says why (``webhook_url_*``)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class UrlPolicy:
    https_only: bool
    public_only: bool

    @classmethod
    def of(cls, production: bool, allow_private: bool) -> UrlPolicy:
        return cls(https_only=production, public_only=production and not allow_private)


@dataclass(frozen=True)
class Target:
    """Where one attempt connects: the URL's host and port and, when checked, the
    address to use."""

    url: str
    scheme: str
    host: str
    port: int
    address: str | None


def blocked(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return blocked(ip.ipv4_mapped)
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED)
        or not ip.is_global
    )


_SHARED = ipaddress.ip_network("100.64.0.0/10")


def parse(url: str, policy: UrlPolicy) -> Target:
    """The URL's parts; raises :class:`UnsafeUrl` for a malformed or refused shape."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise UnsafeUrl(f"not a valid URL: {e}", "webhook_url_invalid") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl("the URL must be http(s)://host/...", "webhook_url_invalid")
    if parts.username or parts.password:
        raise UnsafeUrl("credentials in the URL are not allowed", "webhook_url_invalid")
    if policy.https_only and parts.scheme != "https":
        raise UnsafeUrl("only https URLs are allowed", "webhook_url_not_https")
    default = 443 if parts.scheme == "https" else 80
    host = parts.hostname.rstrip(".").lower()
    return Target(url, parts.scheme, host, port or default, None)


def literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def resolve(target: Target, policy: UrlPolicy) -> Target:
    """``target`` with the address to connect to, every address of its host checked
    when the policy says public only (else unresolved: the HTTP client resolves)."""
    if not policy.public_only:
        return target
    ip = literal(target.host)
    if ip is not None:
        addresses = [ip]
    else:
        if target.host == "localhost" or target.host.endswith(".localhost"):
            raise UnsafeUrl("localhost is not allowed", "webhook_url_private")
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except OSError as e:
            raise UnsafeUrl(
                f"{target.host} does not resolve: {e}", "webhook_url_unresolvable"
            ) from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise UnsafeUrl(f"{target.host} does not resolve", "webhook_url_unresolvable")
    for address in addresses:
        if blocked(address):
            raise UnsafeUrl(
                f"{target.host} resolves to a non-public address ({address})",
                "webhook_url_private",
            )
    return Target(target.url, target.scheme, target.host, target.port, str(addresses[0]))


async def check(url: str, policy: UrlPolicy) -> Target:
    return await resolve(parse(url, policy), policy)
