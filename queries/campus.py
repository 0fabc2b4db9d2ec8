"""Who is asking: the client IP behind the configured proxies, and whether it is on campus.

SMTPLOG_TRUSTED_PROXY_COUNT counts the reverse proxies in front of the web process, each
appending the address it received the request from to X-Forwarded-For. With none, the TCP
peer (REMOTE_ADDR) is the client and every header is ignored. With N, only the last N
entries of X-Forwarded-For were written by our proxies; whatever the client sent sits to
their left and is cut off before ipware reads the chain, so no forged entry (nor a stray
quote that would make a lenient parser merge or drop hops) can shift the position read.
The chain handed to ipware is "<client>, <proxy 2>, ..., <proxy N>, REMOTE_ADDR", which is
exactly ipware's proxy_count convention; strict mode refuses it if any hop is not an IP.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest
from ipware import get_client_ip

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
HEADER = "HTTP_X_FORWARDED_FOR"
UNIX_SOCKET_PEER = "127.0.0.1"


class _Meta:
    """The only request attribute ipware reads."""

    def __init__(self, meta: dict[str, str]) -> None:
        self.META = meta


def client_ip(request: HttpRequest) -> IPAddress | None:
    """The client's address, IPv4-mapped IPv6 unwrapped; None when it cannot be told."""
    count = settings.SMTPLOG_TRUSTED_PROXY_COUNT
    hops = [request.META.get("REMOTE_ADDR", "")]
    if count:
        forwarded = request.META.get(HEADER, "").split(",")
        if len(forwarded) < count:
            return None  # reached us without passing through all of our proxies
        # A proxy on a unix socket (nginx to gunicorn, deploy/) has no address: it is
        # on this host. Its own address is never taken for the client's anyway.
        hops = forwarded[-count:] + [hops[0] or UNIX_SOCKET_PEER]
    found, _routable = get_client_ip(
        _Meta({HEADER: ",".join(hop.strip() for hop in hops)}),
        proxy_count=count,
        request_header_order=[HEADER],
        strict=True,
    )
    if found is None:
        return None
    address = ipaddress.ip_address(found)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address


def in_networks(address: IPAddress | None, networks) -> bool:
    return address is not None and any(
        address.version == net.version and address in net for net in networks
    )


def is_campus(address: IPAddress | None) -> bool:
    """May use the form (and its captcha): SMTPLOG_CAMPUS_NETWORKS."""
    return in_networks(address, settings.SMTPLOG_CAMPUS_NETWORKS)


def is_staff_network(address: IPAddress | None) -> bool:
    """May reach the admin: SMTPLOG_STAFF_NETWORKS."""
    return in_networks(address, settings.SMTPLOG_STAFF_NETWORKS)


def client_ip_text(request: HttpRequest) -> str:
    """client_ip() as text, "" when unknown (django-axes' AXES_CLIENT_IP_CALLABLE)."""
    address = client_ip(request)
    return "" if address is None else str(address)


def client_net(address: IPAddress) -> str:
    """What the per-IP limit counts: an IPv4 address, or the /64 of an IPv6 one."""
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
