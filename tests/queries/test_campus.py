"""Who may use the form: campus networks only, whatever headers a client forges."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory

from queries.campus import client_ip, client_net, is_campus

pytestmark = pytest.mark.django_db

OFF = "203.0.113.9"
ON = "140.114.63.228"


def ip_of(remote_addr: str = OFF, **headers) -> str | None:
    request = RequestFactory().get("/", REMOTE_ADDR=remote_addr, **headers)
    found = client_ip(request)
    return None if found is None else str(found)


@pytest.mark.parametrize(
    "address, campus",
    [
        ("140.114.63.228", True),
        ("140.114.255.1", True),
        ("140.115.0.1", False),
        ("203.0.113.9", False),
        ("127.0.0.1", True),
        ("::1", True),
        ("2001:db8::1", False),
        ("::ffff:140.114.1.2", True),  # IPv4-mapped IPv6 of a campus address
        ("::ffff:203.0.113.9", False),
    ],
)
def test_it_matches_campus_networks(address, campus, settings):
    assert is_campus(client_ip(RequestFactory().get("/", REMOTE_ADDR=address))) is campus


def test_it_finds_campus_ipv6_networks(settings):
    import ipaddress

    settings.SMTPLOG_CAMPUS_NETWORKS = [ipaddress.ip_network("2001:288:1001::/48")]
    assert is_campus(client_ip(RequestFactory().get("/", REMOTE_ADDR="2001:288:1001:5::9")))
    assert not is_campus(client_ip(RequestFactory().get("/", REMOTE_ADDR="2001:288:1002::9")))


@pytest.mark.parametrize(
    "header, value",
    [
        ("HTTP_X_FORWARDED_FOR", ON),
        ("HTTP_X_FORWARDED_FOR", f"{ON}, 10.0.0.1"),
        ("HTTP_CLIENT_IP", ON),
        ("HTTP_X_REAL_IP", ON),
        ("HTTP_FORWARDED", f"for={ON}"),
        ("HTTP_X_CLUSTER_CLIENT_IP", ON),
        ("HTTP_TRUE_CLIENT_IP", ON),
    ],
)
def test_with_no_proxy_only_the_tcp_peer_counts(header, value):
    assert ip_of(OFF, **{header: value}) == OFF


@pytest.mark.parametrize("header", ["HTTP_CLIENT_IP", "HTTP_X_REAL_IP", "HTTP_FORWARDED"])
def test_behind_a_proxy_other_headers_are_ignored(header, settings):
    settings.SMTPLOG_TRUSTED_PROXY_COUNT = 1
    value = f"for={ON}" if header == "HTTP_FORWARDED" else ON
    assert ip_of("10.0.0.2", HTTP_X_FORWARDED_FOR=OFF, **{header: value}) == OFF


def test_behind_one_proxy_the_entry_it_appended_is_the_client(settings):
    settings.SMTPLOG_TRUSTED_PROXY_COUNT = 1
    assert ip_of("10.0.0.2", HTTP_X_FORWARDED_FOR=ON) == ON
    # The client forged an entry; the proxy appended the real peer after it.
    assert ip_of("10.0.0.2", HTTP_X_FORWARDED_FOR=f"{ON}, {OFF}") == OFF
    assert ip_of("10.0.0.2", HTTP_X_FORWARDED_FOR=f"{ON},{ON}, {OFF}") == OFF


def test_behind_two_proxies_the_first_proxys_entry_is_the_client(settings):
    settings.SMTPLOG_TRUSTED_PROXY_COUNT = 2
    assert ip_of("10.0.0.3", HTTP_X_FORWARDED_FOR=f"{ON}, 10.0.0.2") == ON
    assert ip_of("10.0.0.3", HTTP_X_FORWARDED_FOR=f"{ON}, {OFF}, 10.0.0.2") == OFF


def test_a_stray_quote_cannot_shift_the_chain(settings):
    settings.SMTPLOG_TRUSTED_PROXY_COUNT = 1
    forged = f'{ON}, {ON}, "x, {OFF}'  # an unclosed quote would swallow the proxy's entry
    assert ip_of("10.0.0.2", HTTP_X_FORWARDED_FOR=forged) == OFF


def test_without_the_proxies_header_no_ip_is_determined(settings):
    settings.SMTPLOG_TRUSTED_PROXY_COUNT = 2
    assert ip_of("10.0.0.3", HTTP_X_FORWARDED_FOR=ON) is None
    assert ip_of("10.0.0.3") is None


def test_a_garbage_proxy_entry_determines_nothing(settings):
    settings.SMTPLOG_TRUSTED_PROXY_COUNT = 1
    assert ip_of("10.0.0.2", HTTP_X_FORWARDED_FOR="unknown") is None


def test_ipv4_mapped_addresses_are_unwrapped(settings):
    assert ip_of("::ffff:140.114.1.2") == "140.114.1.2"
    settings.SMTPLOG_TRUSTED_PROXY_COUNT = 1
    assert ip_of("10.0.0.2", HTTP_X_FORWARDED_FOR="::ffff:140.114.1.2") == "140.114.1.2"


def test_the_per_ip_limit_counts_ipv6_per_64():
    import ipaddress

    assert client_net(ipaddress.ip_address("2001:db8:1:2:aaaa::1")) == "2001:db8:1:2::/64"
    assert client_net(ipaddress.ip_address("140.114.1.2")) == "140.114.1.2"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"HTTP_X_FORWARDED_FOR": ON},
        {"HTTP_CLIENT_IP": ON},
        {"HTTP_X_REAL_IP": ON},
        {"HTTP_FORWARDED": f"for={ON}"},
        {"HTTP_X_FORWARDED_FOR": f"::ffff:{ON}"},
    ],
)
def test_off_campus_gets_a_localized_403_saying_to_use_the_vpn(headers):
    client = Client(REMOTE_ADDR=OFF, **headers)
    response = client.get("/")
    assert response.status_code == 403
    assert "VPN" in response.content.decode()
    assert client.post("/", {"email": "alice@cs.nthu.edu.tw"}).status_code == 403
    zh = client.get("/", HTTP_ACCEPT_LANGUAGE="zh-TW")
    assert zh.status_code == 403
    assert "校園網路" in zh.content.decode()


def test_the_help_page_is_open_to_everyone(outside_client):
    assert outside_client.get("/help/").status_code == 200
