"""SSRF guard for webhook URLs: only http(s) to public addresses, and connect to exactly the address checked.

A subscriber URL is chosen by whoever holds an admin token, and the workers POST to it from inside the
network. So the host is resolved, every address it resolves to must be public (one private answer is
enough to refuse: an attacker controls the order), and the request then goes to the address that was
checked, not to the name again — a second lookup could answer 127.0.0.1 (DNS rebinding). The URL keeps
its name for the Host header and TLS (SNI and certificate check), so virtual hosts and HTTPS work as usual.
`TICKWATCH_WEBHOOK_ALLOW_NETWORKS` opens chosen networks on purpose (local receivers in tests and the demo).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import httpx

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
Resolver = Callable[[str, int], list[str]]

_SHARED = IPv4Network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598): neither private nor public
_NAT64 = IPv6Network("64:ff9b::/96")  # well-known NAT64 prefix: the last 32 bits are an IPv4 address
_ULA = IPv6Network("fc00::/7")
_RFC1918 = tuple(IPv4Network(net) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_METADATA = IPv4Address("169.254.169.254")


class UnsafeURL(ValueError):
    """A webhook URL the guard refuses; the message says why, ready for a 422 or a delivery log."""


def embedded_ipv4(address: Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (IPv4-mapped, NAT64, 6to4), which is where traffic ends up."""
    if isinstance(address, IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def refusal(address: Address) -> str | None:
    """Why `address` may not be reached (e.g. 'loopback'), or None for a public address. Pure."""
    inner = embedded_ipv4(address)
    if inner is not None:
        reason = refusal(inner)
        return f"{reason}, as IPv4 {inner} inside IPv6" if reason else None
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address == _METADATA:
        return "link-local (cloud metadata service)"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, IPv4Address) and address in _SHARED:
        return "shared address space (CGNAT, RFC 6598)"
    if isinstance(address, IPv6Address) and address in _ULA:
        return "unique local (IPv6 ULA)"
    if any(address in network for network in _RFC1918):
        return "private (RFC 1918)"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "special-purpose (not public)"
    if not address.is_global:
        return "not publicly routable"
    return None


def allowed(address: Address, networks: Sequence[Network]) -> bool:
    """On the allow-list (an IPv4 address inside IPv6 is matched as the IPv4 address it is)."""
    candidates = [address] + ([inner] if (inner := embedded_ipv4(address)) is not None else [])
    return any(
        candidate in network for candidate in candidates for network in networks if candidate.version == network.version
    )


@dataclass(frozen=True)
class Target:
    """Where a request for `url` goes: the checked `address`, with the URL's own host for Host and TLS."""

    url: httpx.URL
    address: Address

    def request_url(self) -> httpx.URL:
        """The URL with the checked address in place of the name (so nothing resolves it again)."""
        return self.url.copy_with(host=str(self.address))

    def headers(self) -> dict[str, str]:
        return {"host": self.url.netloc.decode("ascii")}

    def extensions(self) -> dict[str, str]:
        """TLS is negotiated and verified for the name in the URL, not for the address."""
        return {"sni_hostname": self.url.host} if self.url.scheme == "https" else {}


def parse(url: str) -> httpx.URL:
    """An absolute http(s) URL with a host and no credentials, or UnsafeURL saying what is wrong."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as error:
        raise UnsafeURL(f"not a valid URL: {error}") from None
    if parsed.scheme not in ("http", "https"):
        raise UnsafeURL(f"only http and https URLs can receive webhooks; got {parsed.scheme or 'no'} scheme")
    if not parsed.host:
        raise UnsafeURL("the URL has no host")
    if parsed.userinfo:
        raise UnsafeURL(
            "credentials in the URL are not supported: receivers authenticate deliveries by their signature"
        )
    return parsed


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UnsafeURL(f"{host} does not resolve: {error}") from None
    return [str(info[4][0]) for info in infos]


def host_of(url: str) -> str:
    """The host of a URL, for what people read (logs, Slack notices): never its path, query or credentials."""
    try:
        return httpx.URL(url).host or "?"
    except httpx.InvalidURL:
        return "?"


def check(url: str, allow: Sequence[Network] = (), resolver: Resolver = system_resolver) -> Target:
    """Resolve `url`'s host and refuse it unless every address is public or allow-listed.

    Raises UnsafeURL naming the address and what it is; returns the Target to connect to otherwise.
    """
    parsed = parse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    host = parsed.host
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    texts = [str(literal)] if literal is not None else resolver(host, port)
    addresses = []
    for text in dict.fromkeys(texts):
        address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id (fe80::1%eth0)
        reason = None if allowed(address, allow) else refusal(address)
        if reason:
            shown = host if literal is not None else f"{host} resolves to {address}, which"
            raise UnsafeURL(
                f"{shown} is {reason}: webhooks only go to public addresses "
                "(TICKWATCH_WEBHOOK_ALLOW_NETWORKS opens chosen networks)"
            )
        addresses.append(address)
    if not addresses:
        raise UnsafeURL(f"{host} resolves to no address")
    return Target(parsed, addresses[0])
