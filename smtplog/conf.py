"""Parsing of settings from environment variables.

Each helper reads one variable, falls back to a default that runs on a fresh
checkout, and raises ImproperlyConfigured naming the variable when its value is
wrong, so a bad deployment stops at start-up instead of misbehaving later.
"""

from __future__ import annotations

import ipaddress
import os
import re
import zoneinfo

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def _raw(name: str, default: str, environ=None) -> str:
    return (os.environ if environ is None else environ).get(name, default).strip()


def env_str(name: str, default: str = "", environ=None) -> str:
    return _raw(name, default, environ)


def env_bool(name: str, default: bool, environ=None) -> bool:
    value = _raw(name, "1" if default else "0", environ).lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}: expected one of true/false/1/0/yes/no, got {value!r}")


def env_int(
    name: str, default: int, minimum: int | None = None, maximum: int | None = None, environ=None
) -> int:
    value = _raw(name, str(default), environ)
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}: expected a whole number, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}: must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}: must be at most {maximum}, got {number}")
    return number


def env_list(name: str, default: list[str], environ=None) -> list[str]:
    """A comma- or whitespace-separated list; empty items are dropped."""
    value = _raw(name, ",".join(default), environ)
    return [item for item in re.split(r"[,\s]+", value) if item]


def env_domains(name: str, default: list[str], environ=None) -> list[str]:
    domains = [d.lower().strip(".") for d in env_list(name, default, environ)]
    if not domains:
        raise ImproperlyConfigured(f"{name}: at least one mail domain is needed")
    for domain in domains:
        if not _DOMAIN_RE.match(domain):
            raise ImproperlyConfigured(f"{name}: {domain!r} is not a valid domain name")
    return domains


def env_networks(name: str, default: list[str], environ=None):
    """CIDR networks, IPv4 and IPv6. Host bits must be zero (140.114.0.0/16, not 140.114.1.1/16)."""
    networks = []
    for item in env_list(name, default, environ):
        try:
            networks.append(ipaddress.ip_network(item, strict=True))
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: {item!r} is not a CIDR network ({exc})") from None
    if not networks:
        raise ImproperlyConfigured(f"{name}: at least one network is needed, or nobody can ask")
    return networks


def env_timezone(name: str, default: str, environ=None) -> str:
    value = _raw(name, default, environ)
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(
            f"{name}: {value!r} is not a known time zone (e.g. Asia/Taipei)"
        ) from None
    return value


def env_hour_minute(name: str, default: str, environ=None) -> tuple[int, int]:
    value = _raw(name, default, environ)
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value)
    if not match:
        raise ImproperlyConfigured(f"{name}: expected a time as HH:MM (e.g. 01:00), got {value!r}")
    return int(match[1]), int(match[2])


def env_email(name: str, default: str, environ=None) -> str:
    value = _raw(name, default, environ)
    if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", value):
        raise ImproperlyConfigured(f"{name}: {value!r} is not an email address")
    return value


def env_url(name: str, default: str, environ=None) -> str:
    """An http(s) URL, or empty for none."""
    value = _raw(name, default, environ)
    if value and not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", value):
        raise ImproperlyConfigured(f"{name}: expected an http:// or https:// URL, got {value!r}")
    return value
