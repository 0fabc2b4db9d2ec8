"""Typed records of the Postfix log lines the service uses.

One record per useful line; the correlation engine (smtplog.ingest) dispatches on the
record's class. Field values are as logged, with angle brackets removed from addresses
(the null sender `from=<>` is ""). Plain dataclasses with slots: cheap to build on the
ingestion hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(slots=True)
class Record:
    """What every record has: when, where and who logged it, and for which queue ID."""

    time: datetime  # timezone-aware
    host: str  # relay host name as logged
    daemon: str  # last path element of the program: "smtp", "smtpd", "qmgr"...
    pid: int | None
    queue_id: str | None  # None for NOQUEUE and lines without one


@dataclass(slots=True)
class ClientLine(Record):
    """smtpd `QID: client=name[ip][:port][, sasl_method=X, sasl_username=Y]`: mail accepted."""

    client_name: str
    client_ip: str
    sasl_method: str  # "" when the session did not authenticate
    sasl_username: str  # "" when the session did not authenticate


@dataclass(slots=True)
class PickupLine(Record):
    """pickup `QID: uid=N from=<x>`: mail submitted locally (sendmail command)."""

    sender: str


@dataclass(slots=True)
class MessageIdLine(Record):
    """cleanup `QID: message-id=<...>`: the id without its angle brackets, may be ""."""

    message_id: str


@dataclass(slots=True)
class QmgrFrom(Record):
    """qmgr `QID: from=<x>, size=N, nrcpt=N (queue active)`, logged again at every retry."""

    sender: str  # "" for the null sender
    size: int | None
    nrcpt: int | None


@dataclass(slots=True)
class QmgrRemoved(Record):
    """`QID: removed`: the end of this queue ID's life (qmgr, or postsuper -d)."""


@dataclass(slots=True)
class QmgrExpired(Record):
    """qmgr `QID: from=<x>, status=expired, returned to sender` (or force-expired)."""

    sender: str
    forced: bool  # status=force-expired (postsuper -e)


@dataclass(slots=True)
class Delivery(Record):
    """A delivery status line: `QID: to=<r>, ..., relay=..., dsn=X.Y.Z, status=S (TEXT)`.

    relay is the raw value; relay_host/relay_ip/relay_port are split from it when it has
    the host[ip]:port form (ip an IPv4 or IPv6 address), else relay_host is the whole
    relay and relay_ip is "". response is everything inside the parentheses after
    status=, up to the last ")" of the line (to the end of the line when it was cut
    short). queued_as is the NEWID of a "queued as NEWID" in the response (a hand-off
    to a content filter, or any server's reply); forwarded_as the NEWID of local's
    `status=sent (forwarded as NEWID)` (an alias or .forward expansion).
    """

    recipient: str
    orig_to: str
    relay: str
    relay_host: str
    relay_ip: str
    relay_port: int | None
    delay: float | None
    dsn: str
    status: str  # sent, deferred, bounced, expired, undeliverable...
    response: str
    queued_as: str | None
    forwarded_as: str | None


@dataclass(slots=True)
class Reject(Record):
    """A policy action on a message or session: smtpd, postscreen and cleanup forms.

    `NOQUEUE: reject: RCPT from name[ip]: 550 5.1.1 <x>: Recipient address rejected: ...;
    from=<a> to=<b> proto=ESMTP helo=<h>`; also reject_warning, discard, hold, filter,
    redirect, milter-reject, proxy-reject, and cleanup's header/body check forms
    (stage "header" or "body").
    """

    action: str  # "reject", "reject_warning", "discard", "milter-reject", "filter"...
    stage: str  # "RCPT", "DATA", "VRFY", "CONNECT", "END-OF-MESSAGE", "header"...
    client_name: str  # "" when not logged (postscreen logs only the address)
    client_ip: str
    code: str  # SMTP reply code "550", "" when the line has none
    dsn: str  # enhanced status "5.1.1", "" when the line has none
    text: str  # after "CODE DSN " up to "; from="
    sender: str | None  # from= without <>; "" for from=<>; None when absent
    recipient: str  # to= without <>; "" when absent
    helo: str  # helo= without <>; "" when absent


@dataclass(slots=True)
class SaslFailure(Record):
    """smtpd `warning: name[ip]: SASL LOGIN authentication failed: REASON[, sasl_username=X]`."""

    client_name: str
    client_ip: str
    method: str
    reason: str
    sasl_username: str  # "" when not logged (Cyrus-era lines)


@dataclass(slots=True)
class BounceNotice(Record):
    """bounce `QID: sender non-delivery notification: NDNQID`.

    kind: "non-delivery", "delivery status", "delay", or "postmaster " + one of those.
    """

    kind: str
    ndn_queue_id: str
