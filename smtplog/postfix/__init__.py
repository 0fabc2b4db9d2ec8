"""Postfix log parsing: syslog lines in, typed records out.

Plain Python on purpose (no Django import anywhere in this package): it is the hot path
of ingestion and is usable from any script. docs/postfix-lines.md lists the line kinds.
"""

from __future__ import annotations

from smtplog.postfix.parser import SKIP_REASONS, LineParser, line_host
from smtplog.postfix.records import (
    BounceNotice,
    ClientLine,
    Delivery,
    MessageIdLine,
    PickupLine,
    QmgrExpired,
    QmgrFrom,
    QmgrRemoved,
    Record,
    Reject,
    SaslFailure,
)

__all__ = [
    "SKIP_REASONS",
    "BounceNotice",
    "ClientLine",
    "Delivery",
    "LineParser",
    "MessageIdLine",
    "PickupLine",
    "QmgrExpired",
    "QmgrFrom",
    "QmgrRemoved",
    "Record",
    "Reject",
    "SaslFailure",
    "line_host",
]
