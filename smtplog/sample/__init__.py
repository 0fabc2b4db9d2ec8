"""A realistic month of campus relay-cluster Postfix logs, and the exact counts they must give.

`generate()` simulates the university's outgoing relays (``smtp1``, ``smtp2``, ...) and writes, per
relay, Debian-style daily rotated syslog files (``mail.log``, ``mail.log.1``, ``mail.log.2.gz`` ...,
rotated by cron.daily at about 06:25 local time), or one log host's such files for all relays
(``layout="central"``), plus ``expected.json``: what every column of the report
(docs/counting-rules.md) must show for each sender and local day, and what pflogsumm must report
per relay and day. Every line follows the grammar of real Postfix, amavis, opendkim, dovecot
and postscreen lines (docs/postfix-lines.md), so our parser and pflogsumm both read them.

The simulation: SASL submissions (addresses and bare logins), webmail, campus servers relaying
without SASL, forwarded off-campus senders; every message crosses an amavis content filter
(QID1 -> ``queued as`` QID2 on 127.0.0.1:10024); several recipients per message, a few bulk ones;
sent, bounced, and deferred recipients retried on Postfix's back-off until sent, bounced or expired
after five days (with non-delivery notifications from the null sender); rejects, SASL failures
(address, bare login and username-less Cyrus forms), queue-ID reuse, a compromised account, a
content-filter outage, and noise from other daemons.

Counting rules (the ingestion engine implements the same; each event on the local day of the line
that evidences it, for the envelope sender in lower case, never for the null sender):

* auth_rcv: each ``client=..., sasl_username=`` line of a submission (not the client=localhost
  re-injection), for the message's ``from=``.
* auth_blk: each ``reject:`` line (NOQUEUE, queue ID, postscreen) with a non-empty ``from=``; each
  SASL failure whose ``sasl_username`` is an address (that address) or a bare login (the sender that
  login authenticates as; every bare login used also authenticates successfully somewhere in the
  data); failures without a username count for nobody.
* sent: each ``status=sent`` line except the hand-off to the content filter (relay
  127.0.0.1[127.0.0.1]:10024, "queued as NEWID"); bounced, deferred: each such line, any hop,
  postfix/error included; expired: each qmgr ``status=expired, returned to sender`` line.

The simulation streams: it works through the month an hour at a time, keeps only the lines not yet
written and the messages still queued, and writes each hour's lines (sorted) as it goes.
No Django here: plain Python, usable from tests, the management command and benchmarks.

The package's modules, in the order a line is made: ``campus`` (the fixed world), ``cluster``
(relays, senders, recipients, messages), ``clock`` (timestamps, rotated files), ``replies`` (what
remote servers answer), ``messages``, ``recipients`` and ``abuse`` (the simulation's parts),
``simulation`` (the hour-by-hour loop), ``expected`` (the counts). Callers need only what this
module exports.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from smtplog.sample.clock import FORMATS, LAYOUTS
from smtplog.sample.cluster import MAX_RELAYS
from smtplog.sample.expected import COLUMNS, PFLOGSUMM, Expected
from smtplog.sample.simulation import Simulation

__all__ = ["COLUMNS", "FORMATS", "LAYOUTS", "MAX_RELAYS", "PFLOGSUMM", "Expected", "generate"]


def generate(
    out_dir: Path,
    days: int = 31,
    end: date | None = None,
    *,
    relays: int = 3,
    messages_per_day: int = 300,
    seed: int = 1,
    tz: str = "Asia/Taipei",
    timestamp_format: str = "classic",
    senders: int = 60,
    gzip_rotated: bool = True,
    until: datetime | None = None,
    layout: str = "per-relay",
    relay_weights: Sequence[float] | None = None,
) -> Expected:
    """Write a sample of `days` local days ending with `end` (default: today) under `out_dir`.

    No line is later than `until`; without an `end`, the month ends today, at the present.

    Per relay, ``out_dir/<host>/mail.log*`` (older ``mail.log*`` files there are replaced), and
    ``out_dir/expected.json``. With ``layout="central"``, one log host's files for all relays
    instead, ``out_dir/loghost/mail.log*``: the relays' lines interleaved in time order, each with
    its relay's host field (the same events and counts as per relay, for the same arguments).
    `relay_weights` (one per relay, e.g. ``(55, 30, 15)``) shares the traffic unevenly; by
    default evenly. `messages_per_day` is the cluster's mean of submitted messages on a
    day (weekends fewer; bulk mail and the incidents come on top). With two relays or more, the last
    one logs as ``postfix-out`` with long queue IDs. Deterministic for a given seed.
    """
    zone = _check(days, relays, messages_per_day, tz, timestamp_format, senders)
    _check_cluster(relays, layout, relay_weights)
    if end is None:
        until = until or datetime.now(zone)
        end = until.astimezone(zone).date()
    first = end - timedelta(days=days - 1)
    out_dir = Path(out_dir)
    sim = Simulation(
        out_dir,
        first,
        days,
        zone,
        relays=relays,
        per_day=messages_per_day,
        seed=seed,
        timestamp_format=timestamp_format,
        senders=senders,
        gzip_rotated=gzip_rotated,
        until=until.timestamp() if until else None,
        layout=layout,
        relay_weights=relay_weights,
    )
    sim.run()
    expected = sim.expected(tz)
    (out_dir / "expected.json").write_text(
        json.dumps(expected.to_json(), indent=1, sort_keys=True) + "\n"
    )
    return expected


def _check(days: int, relays: int, per_day: int, tz: str, fmt: str, senders: int) -> ZoneInfo:
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    if not 1 <= relays <= MAX_RELAYS:
        raise ValueError(f"relays must be between 1 and {MAX_RELAYS}, not {relays}")
    if per_day < 1:
        raise ValueError(f"messages per day must be at least 1, not {per_day}")
    if senders < 1:
        raise ValueError(f"senders must be at least 1, not {senders}")
    if fmt not in FORMATS:
        raise ValueError(f"timestamp format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    try:
        return ZoneInfo(tz)
    except (ValueError, LookupError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc


def _check_cluster(relays: int, layout: str, weights: Sequence[float] | None) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    if weights is not None and (len(weights) != relays or not all(w > 0 for w in weights)):
        raise ValueError(f"relay weights must be {relays} positive numbers, not {weights!r}")
