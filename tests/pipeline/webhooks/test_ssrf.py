"""The SSRF guard: address classification (pure), and URLs refused before any connection is made.

No test here sends traffic beyond loopback: refused URLs are refused before connecting, and names are
resolved by a resolver function given to `check` where a test needs a name to mean a given address.
"""

from __future__ import annotations

import re
from ipaddress import ip_address, ip_network

import httpx
import pytest

from pipeline.webhooks import ssrf
from stack.webhook_receiver import WebhookReceiver

LOOPBACK = [ip_network("127.0.0.0/8")]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.0.0.1", "private (RFC 1918)"),
        ("172.16.5.4", "private (RFC 1918)"),
        ("192.168.1.1", "private (RFC 1918)"),
        ("100.64.0.1", "shared address space (CGNAT, RFC 6598)"),
        ("169.254.169.254", "link-local (cloud metadata service)"),
        ("169.254.1.1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("240.0.0.1", "reserved"),
        ("198.18.0.1", "special-purpose (not public)"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fd00::1", "unique local (IPv6 ULA)"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback, as IPv4 127.0.0.1 inside IPv6"),
        ("::ffff:169.254.169.254", "link-local (cloud metadata service), as IPv4 169.254.169.254 inside IPv6"),
        ("64:ff9b::a00:1", "private (RFC 1918), as IPv4 10.0.0.1 inside IPv6"),
        ("2002:7f00:1::", "loopback, as IPv4 127.0.0.1 inside IPv6"),
    ],
)
def test_non_public_addresses_are_named(address: str, reason: str):
    assert ssrf.refusal(ip_address(address)) == reason


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:2800:220:1::1", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str):
    assert ssrf.refusal(ip_address(address)) is None


def test_the_allow_list_opens_exactly_its_networks_also_through_ipv4_mapped_addresses():
    assert ssrf.allowed(ip_address("127.0.0.1"), LOOPBACK)
    assert ssrf.allowed(ip_address("::ffff:127.0.0.1"), LOOPBACK)
    assert not ssrf.allowed(ip_address("::1"), LOOPBACK)
    assert not ssrf.allowed(ip_address("10.0.0.1"), LOOPBACK)
    assert ssrf.check("http://[::ffff:127.0.0.1]:8080/h", LOOPBACK).address == ip_address("::ffff:127.0.0.1")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:9/hook", "127.0.0.1 is loopback"),
        ("http://10.0.0.1/hook", "10.0.0.1 is private (RFC 1918)"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is link-local (cloud metadata service)"),
        ("http://[::1]:9/hook", "::1 is loopback"),
        ("http://[fd00::1]/hook", "fd00::1 is unique local (IPv6 ULA)"),
        ("http://[::ffff:127.0.0.1]/hook", "::ffff:127.0.0.1 is loopback, as IPv4 127.0.0.1 inside IPv6"),
        ("http://localhost:9/hook", "localhost resolves to 127.0.0.1, which is loopback"),
        ("ftp://example.com/hook", "only http and https"),
        ("https://user:pw@example.com/hook", "credentials in the URL are not supported"),
        ("not a url", "only http and https"),
    ],
)
def test_unsafe_urls_are_refused_with_the_reason(url: str, message: str):
    with pytest.raises(ssrf.UnsafeURL, match="^" + re.escape(message)):
        ssrf.check(url)


def test_one_private_answer_among_public_ones_is_enough_to_refuse():
    def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.1.2.3"]

    with pytest.raises(ssrf.UnsafeURL, match=re.escape("hooks.example resolves to 10.1.2.3, which is private")):
        ssrf.check("https://hooks.example/h", resolver=resolver)


def test_the_request_goes_to_the_checked_address_with_the_name_for_host_and_tls():
    target = ssrf.check("https://hooks.example:8443/in?x=1", resolver=lambda host, port: ["93.184.216.34"])
    assert str(target.request_url()) == "https://93.184.216.34:8443/in?x=1"
    assert target.headers() == {"host": "hooks.example:8443"}
    assert target.extensions() == {"sni_hostname": "hooks.example"}
    v6 = ssrf.check("http://hooks.example/in", resolver=lambda host, port: ["2606:2800:220:1::1"])
    assert str(v6.request_url()) == "http://[2606:2800:220:1::1]/in" and v6.headers() == {"host": "hooks.example"}


def test_a_pinned_request_reaches_the_checked_address_under_the_urls_name():
    """`hooks.example` never resolves (a reserved name): the request arrives only because nothing looks the name
    up again after the check, and the receiver still sees the URL's host."""
    with WebhookReceiver() as hooks:
        port = hooks.server.server_port
        target = ssrf.check(f"http://hooks.example:{port}/hook", LOOPBACK, resolver=lambda host, port: ["127.0.0.1"])
        with httpx.Client(trust_env=False) as client:
            response = client.post(
                target.request_url(), headers=target.headers(), content=b"{}", extensions=target.extensions()
            )
    assert response.status_code == 204
    assert hooks.received[0][0]["host"] == f"hooks.example:{port}"
