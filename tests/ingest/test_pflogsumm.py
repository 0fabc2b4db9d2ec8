"""pflogsumm, an independent summariser, reconciles with our events day by day.

pflogsumm counts every status=sent line as delivered, including the hand-off to the
content filter and the delivery of non-delivery notices (null sender), which we do not
count. Those are found here with plain string tests on the raw lines, not our parser.
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from django.db.models import Count

from smtplog.ingest.files import expand
from smtplog.models import Event
from tests.ingest.conftest import run
from tests.services import require_program

pytestmark = pytest.mark.slow
MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
        start=1,
    )
}
ROW = re.compile(r"^\s+(\w{3})\s+(\d+)\s+(\d{4})((?:\s+\d+)*)\s*$")


def relay_lines(relay_dir: Path) -> list[str]:
    lines: list[str] = []
    for path in expand([str(relay_dir / "mail.log*")]):
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt") as f:
            lines.extend(f.read().splitlines())
    return lines


def pflogsumm_per_day(lines: list[str]) -> dict[dt.date, Counter]:
    syslog_name = (
        "postfix-out" if any("postfix-out/" in line for line in lines[:500]) else "postfix"
    )
    out = subprocess.run(
        [require_program("pflogsumm"), f"--syslog-name={syslog_name}"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    table = out.split("Per-Day Traffic Summary", 1)[1].split("Per-Hour", 1)[0]
    days: dict[dt.date, Counter] = {}
    for line in table.splitlines():
        m = ROW.match(line)
        if m:
            values = [int(v) for v in m[4].split()] + [0] * 5
            day = dt.date(int(m[3]), MONTHS[m[1]], int(m[2]))
            days[day] = Counter(
                dict(
                    zip(
                        ("received", "delivered", "deferred", "bounced", "rejected"),
                        values[:5],
                        strict=True,
                    )
                )
            )
    return days


def not_ours_per_day(lines: list[str], year: int) -> dict[dt.date, Counter]:
    """Lines pflogsumm counts that we deliberately do not: filter hops, the null sender."""
    null_qids = {line.split(": ", 2)[1] for line in lines if ": from=<>," in line}
    result: dict[dt.date, Counter] = defaultdict(Counter)
    for line in lines:
        if "status=" not in line and "reject:" not in line:
            continue
        day = dt.date(year, MONTHS[line[:3]], int(line[4:6]))
        parts = line.split(": ", 2)
        qid = parts[1] if len(parts) > 2 else ""
        if "status=sent" in line and "relay=127.0.0.1[127.0.0.1]:10024" in line:
            result[day]["delivered"] += 1
        elif qid in null_qids:
            for status, column in (
                ("sent", "delivered"),
                ("deferred", "deferred"),
                ("bounced", "bounced"),
            ):
                if f"status={status} " in line:
                    result[day][column] += 1
        elif "reject:" in line and "from=<>" in line:
            result[day]["rejected"] += 1
    return result


def test_pflogsumm_reconciles_with_our_events_day_by_day(db, tmp_path):
    require_program("pflogsumm")
    from smtplog.sample import generate

    out = tmp_path / "maillog"
    end = dt.date(2026, 11, 27)
    generate(out, days=8, end=end, relays=3, messages_per_day=150, seed=21)
    run(out / "*" / "mail.log*")

    theirs: dict[dt.date, Counter] = defaultdict(Counter)
    not_ours: dict[dt.date, Counter] = defaultdict(Counter)
    for relay_dir in sorted(p for p in out.iterdir() if p.is_dir()):
        lines = relay_lines(relay_dir)
        for day, c in pflogsumm_per_day(lines).items():
            theirs[day].update(c)
        for day, c in not_ours_per_day(lines, end.year).items():
            not_ours[day].update(c)

    ours: dict[dt.date, Counter] = defaultdict(Counter)
    for row in Event.objects.values("day", "status").annotate(n=Count("id")):
        column = {"sent": "delivered", "deferred": "deferred", "bounced": "bounced"}.get(
            row["status"]
        )
        if column:
            ours[row["day"]][column] += row["n"]
    rejects = Event.objects.filter(status="auth_blk", response__startswith="reject:")
    for row in rejects.values("day").annotate(n=Count("id")):
        ours[row["day"]]["rejected"] += row["n"]

    assert set(theirs) == set(ours)
    for day in sorted(theirs):
        for column in ("delivered", "deferred", "bounced", "rejected"):
            assert theirs[day][column] == ours[day][column] + not_ours[day][column], (
                f"{day} {column}: pflogsumm {theirs[day][column]}, ours {ours[day][column]}, "
                f"filter hops and null sender {not_ours[day][column]}"
            )
