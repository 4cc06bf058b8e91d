"""Receiver URL rules (SSRF) and the signature format, checked against the Standard
Webhooks reference library."""

from __future__ import annotations

import asyncio
import base64
import socket
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from api.webhooks import signing, urls
from api.webhooks.dispatcher import DispatchConfig, pinned_url

PRODUCTION = urls.UrlPolicy.of(production=True, allow_private=False)
DEVELOPMENT = urls.UrlPolicy.of(production=False, allow_private=False)


def check(url: str, policy: urls.UrlPolicy) -> urls.Target:
    return asyncio.run(urls.check(url, policy))


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names resolve to what the test says (and only those): a name that was public at
    registration may point at a private address at delivery time."""
    table: dict[str, list[str]] = {}

    async def getaddrinfo(self: Any, host: str, port: int, **_: Any) -> list[Any]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in table[host]]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    return table


def test_development_allows_http_and_private() -> None:
    assert check("http://127.0.0.1:9/x", DEVELOPMENT).address is None
    assert check("https://localhost/x", DEVELOPMENT).host == "localhost"


def test_production_checks_every_resolved_address_at_each_call(
    fake_dns: dict[str, list[str]],
) -> None:
    fake_dns["hooks.example"] = ["93.184.216.34"]
    target = check("https://hooks.example/in", PRODUCTION)
    assert target.address == "93.184.216.34" and target.port == 443
    # DNS now points (partly) inside: the next attempt is refused
    fake_dns["hooks.example"] = ["93.184.216.34", "10.0.0.7"]
    with pytest.raises(urls.UnsafeUrl) as e:
        check("https://hooks.example/in", PRODUCTION)
    assert e.value.code == "webhook_url_private"
    fake_dns["hooks.example"] = ["169.254.169.254"]
    with pytest.raises(urls.UnsafeUrl):
        check("https://hooks.example/in", PRODUCTION)
    with pytest.raises(urls.UnsafeUrl) as e:
        check("https://gone.example/in", PRODUCTION)
    assert e.value.code == "webhook_url_unresolvable"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.1.1",
        "100.64.1.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd12::1",
        "::ffff:10.0.0.1",
        "224.0.0.1",
    ],
)
def test_blocked_addresses(address: str) -> None:
    import ipaddress

    assert urls.blocked(ipaddress.ip_address(address))


def test_public_addresses_pass() -> None:
    import ipaddress

    for address in ("93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"):
        assert not urls.blocked(ipaddress.ip_address(address))


def test_the_attempt_connects_to_the_checked_address() -> None:
    assert pinned_url("https://hooks.example:8443/a?b=1", "93.184.216.34") == (
        "https://93.184.216.34:8443/a?b=1"
    )
    assert pinned_url("https://hooks.example/a", "2606:4700::1").startswith(
        "https://[2606:4700::1]/a"
    )


def test_signature_verifies_with_the_reference_library() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_") and len(signing.secret_key(secret)) >= 24
    body = b'{"type":"webhook.test","timestamp":"2026-01-01T00:00:00.000Z","data":{}}'
    import time

    ts = int(time.time())
    headers = signing.headers(secret, "msg_1", ts, body)
    assert Webhook(secret).verify(body, headers) == {
        "type": "webhook.test",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "data": {},
    }
    expected = signing.sign(secret, "msg_1", ts, body)
    assert headers["webhook-signature"] == expected
    assert base64.b64decode(expected.removeprefix("v1,"))  # v1,<base64>


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    config = DispatchConfig(retry_base_s=1, retry_max_s=60)
    for n, full in ((1, 1000), (2, 2000), (5, 16000), (20, 60000)):
        delays = {config.retry_delay_ms(n) for _ in range(50)}
        assert all(full / 2 <= d <= full for d in delays)
        assert len(delays) > 1
