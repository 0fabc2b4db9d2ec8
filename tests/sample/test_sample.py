"""The sample month generator: realistic files, and counts that the written lines really give.

The counts are checked against an independent recount of the files made here with plain string
tests and regular expressions (a queue ID -> sender map per relay), never against the
generator's own bookkeeping; pflogsumm, the real one, checks the per-relay totals.
"""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from io import StringIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError

from smtplog.postfix import LineParser
from smtplog.sample import COLUMNS, Expected, generate
from tests.services import require_program

MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}
CLASSIC = re.compile(r"^(\w{3}) ([ \d]\d) (\d\d):(\d\d):(\d\d) (\S+) (\S+?)(\[\d+\])?: ")
RFC3339 = re.compile(
    r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)\.(\d{6})([+-]\d\d:\d\d) (\S+) (\S+?)(\[\d+\])?: "
)
LAB = "lab-server@phys.nthu.edu.tw"
TAIPEI = ZoneInfo("Asia/Taipei")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Expected]:
    """Six days across New Year, three relays, classic timestamps."""
    root = tmp_path_factory.mktemp("month")
    return root, generate(root, days=6, end=date(2025, 1, 3), messages_per_day=150)


# -- reading the files back, independently of the generator ---------------------------------


def relay_files(root: Path, relay: dict) -> list[Path]:
    """A relay's files, oldest first (mail.log.N.gz ... mail.log.1, mail.log)."""

    def age(path: Path) -> int:
        parts = path.name.split(".")
        return int(parts[2]) if len(parts) > 2 else 0

    return sorted((root / relay["directory"]).glob("mail.log*"), key=age, reverse=True)


def lines_of(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return fh.read().splitlines()


def all_lines(root: Path, relay: dict) -> list[str]:
    return [line for path in relay_files(root, relay) for line in lines_of(path)]


def day_of(line: str, first: date, last: date) -> str:
    """The local day of a line: its RFC 3339 date, or the year that puts Mmm dd in range."""
    if line[0].isdigit():
        return line[:10]
    month, day = MONTHS[line[:3]], int(line[4:6])
    for year in (first.year, last.year):
        if first <= date(year, month, day) <= last:
            return date(year, month, day).isoformat()
    raise AssertionError(f"{line[:15]} is outside {first}..{last}")


def recount(root: Path) -> tuple[dict, list[str]]:
    """Every column per sender and day, from the lines alone; also the unmapped bare logins."""
    expected = Expected.load(root)
    counts: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    login_sender: dict[str, str] = {}
    bare_failures: list[tuple[str, str]] = []
    for relay in expected.relays:
        sender: dict[str, str] = {}  # queue ID -> sender, updated at every qmgr from=
        sasl: dict[str, tuple[str, str]] = {}  # queue ID -> (day, username) of client= lines
        for line in all_lines(root, relay):
            day = day_of(line, expected.first_day, expected.last_day)
            if m := re.search(r": (\w+): from=<([^>]*)>, size=", line):
                qid, frm = m[1], m[2].lower()
                sender[qid] = frm
                if qid in sasl and frm:
                    client_day, username = sasl.pop(qid)
                    counts[frm][client_day]["auth_rcv"] += 1
                    login_sender.setdefault(username, frm)
            elif m := re.search(r": (\w+): client=.*, sasl_username=(\S+)$", line):
                sasl[m[1]] = (day, m[2])
            elif m := re.search(r": (\w+): to=<.*, status=(sent|bounced|deferred) \(", line):
                if m[2] == "sent" and "relay=127.0.0.1[127.0.0.1]:10024," in line:
                    continue  # the hand-off to the content filter
                if sender.get(m[1]):
                    counts[sender[m[1]]][day][m[2]] += 1
            elif m := re.search(r"from=<([^>]*)>, status=expired, returned to sender$", line):
                counts[m[1].lower()][day]["expired"] += 1
            elif " reject: " in line:
                frm = re.search(r"from=<([^>]*)>", line)[1].lower()
                if frm:
                    counts[frm][day]["auth_blk"] += 1
            elif m := re.search(r"authentication failed: .*sasl_username=(\S+)$", line):
                if "@" in m[1]:
                    counts[m[1].lower()][day]["auth_blk"] += 1
                else:
                    bare_failures.append((day, m[1]))
    for day, login in bare_failures:
        if login in login_sender:
            counts[login_sender[login]][day]["auth_blk"] += 1
    unmapped = sorted({login for _, login in bare_failures if login not in login_sender})
    plain = {s: {d: dict(c) for d, c in days.items()} for s, days in counts.items()}
    return plain, unmapped


def local_time(line: str, year: int) -> datetime:
    m = CLASSIC.match(line)
    return datetime(year, MONTHS[m[1]], int(m[2]), int(m[3]), int(m[4]), int(m[5]))  # noqa: DTZ001


# -- the tests ----------------------------------------------------------------------------------


def test_the_same_seed_writes_the_same_bytes_and_counts_and_another_seed_does_not(
    tmp_path: Path,
) -> None:
    options = "days=3, end=date(2025, 5, 7), messages_per_day=40"
    generate(tmp_path / "a", days=3, end=date(2025, 5, 7), messages_per_day=40, seed=5)
    generate(tmp_path / "c", days=3, end=date(2025, 5, 7), messages_per_day=40, seed=6)
    # another process, with another string hash seed: no set order may leak into the output
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from datetime import date; "
            "from smtplog.sample import generate; "
            f"generate({str(tmp_path / 'b')!r}, {options}, seed=5)",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        check=True,
    )

    def written(name: str) -> dict[str, tuple[bytes, float]]:
        """Contents, and the mtimes the generator sets (those of the log files)."""
        return {
            p.relative_to(tmp_path / name).as_posix(): (
                p.read_bytes(),
                p.stat().st_mtime if p.name.startswith("mail.log") else 0,
            )
            for p in sorted((tmp_path / name).rglob("*"))
            if p.is_file()
        }

    assert written("a") == written("b")
    assert written("a").keys() == written("c").keys() and written("a") != written("c")


def test_each_relay_rotates_daily_at_25_past_six_keeping_dot_one_plain_and_older_files_gzipped(
    month: tuple[Path, Expected],
) -> None:
    root, expected = month
    for relay in expected.relays:
        files = relay_files(root, relay)
        assert [f.name for f in files] == (
            [f"mail.log.{n}.gz" for n in range(6, 1, -1)] + ["mail.log.1", "mail.log"]
        )
        for path in files:
            gzipped = path.read_bytes()[:2] == b"\x1f\x8b"
            assert gzipped == (path.suffix == ".gz")
        for n, (older, newer) in enumerate(zip(files, files[1:], strict=False)):
            day = date.fromordinal(expected.first_day.toordinal() + n)
            last, first = lines_of(older)[-1], lines_of(newer)[0]
            assert local_time(last, day.year) < datetime.combine(day, time(6, 26))  # noqa: DTZ001
            assert local_time(first, day.year) >= datetime.combine(day, time(6, 25))  # noqa: DTZ001


def test_each_file_s_mtime_is_the_time_of_its_last_line(month: tuple[Path, Expected]) -> None:
    root, expected = month
    for relay in expected.relays:
        for path in relay_files(root, relay):
            last = lines_of(path)[-1]
            year = 2024 if last.startswith("Dec") else 2025
            mtime = datetime.fromtimestamp(os.stat(path).st_mtime, TAIPEI)
            assert mtime.replace(tzinfo=None, microsecond=0) == local_time(last, year), path


def test_classic_timestamps_carry_each_line_into_the_new_year(month: tuple[Path, Expected]) -> None:
    root, expected = month
    assert (expected.first_day, expected.last_day) == (date(2024, 12, 29), date(2025, 1, 3))
    for relay in expected.relays:
        previous = None
        for path in relay_files(root, relay):
            # anchor each file on its mtime, step back a year when the month runs ahead of it
            anchor = datetime.fromtimestamp(os.stat(path).st_mtime, TAIPEI)
            for line in lines_of(path):
                year = anchor.year - 1 if MONTHS[line[:3]] > anchor.month else anchor.year
                when = local_time(line, year)
                assert expected.first_day <= when.date() <= expected.last_day
                assert previous is None or when >= previous
                previous = when
        assert previous.date() == date(2025, 1, 3)
    december = [line for line in all_lines(root, expected.relays[0]) if line.startswith("Dec 31")]
    january = [line for line in all_lines(root, expected.relays[0]) if line.startswith("Jan  1")]
    assert december and january


def test_rfc3339_lines_carry_microseconds_and_the_offset_of_their_local_time(
    tmp_path: Path,
) -> None:
    # Berlin moves its clocks on 30 March 2025: a day of 23 hours, offsets +01:00 then +02:00
    expected = generate(
        tmp_path,
        days=3,
        end=date(2025, 3, 31),
        messages_per_day=60,
        tz="Europe/Berlin",
        timestamp_format="rfc3339",
    )
    offsets = set()
    for relay in expected.relays:
        previous = None
        for line in all_lines(tmp_path, relay):
            m = RFC3339.match(line)
            assert m, line
            assert m[5] == relay["host"]
            instant = datetime.fromisoformat(f"{m[1]}T{m[2]}.{m[3]}{m[4]}")
            assert date(2025, 3, 29) <= instant.date() <= date(2025, 3, 31)
            assert previous is None or instant >= previous
            previous = instant
            offsets.add((m[1], m[4]))
    assert ("2025-03-29", "+01:00") in offsets and ("2025-03-31", "+02:00") in offsets
    got, unmapped = recount(tmp_path)
    assert got == expected.counts and not unmapped


def test_expected_counts_equal_an_independent_recount_of_the_written_lines(
    month: tuple[Path, Expected],
) -> None:
    root, expected = month
    got, unmapped = recount(root)
    assert unmapped == []  # every bare login that failed also authenticated somewhere
    assert got == expected.counts
    assert Expected.load(root).counts == expected.counts
    assert sum(expected.totals().values()) > 5000
    assert expected.lines == sum(len(all_lines(root, r)) for r in expected.relays)


def test_the_lab_server_s_sent_bounced_deferred_and_expired_follow_from_plain_string_tests(
    month: tuple[Path, Expected],
) -> None:
    """A server relaying without SASL: its queue IDs are those of its qmgr from= lines."""
    root, expected = month
    counted = dict.fromkeys(("sent", "bounced", "deferred", "expired"), 0)
    for relay in expected.relays:
        mine: set[str] = set()  # the lab server's queue IDs, as qmgr last logged them
        for line in all_lines(root, relay):
            qid = line.split(": ")[1] if ": " in line else ""
            if ": from=<" in line and ", size=" in line:
                if f"from=<{LAB}>" in line:
                    mine.add(qid)
                else:
                    mine.discard(qid)  # a reused queue ID now carries someone else's mail
            elif f"from=<{LAB}>, status=expired, returned to sender" in line:
                counted["expired"] += 1
            elif qid in mine and " to=<" in line and "relay=127.0.0.1[127.0.0.1]:10024" not in line:
                for status in ("sent", "bounced", "deferred"):
                    counted[status] += f", status={status} (" in line
    want = {c: sum(day.get(c, 0) for day in expected.counts[LAB].values()) for c in counted}
    assert counted == want
    assert want["sent"] > 0


@pytest.mark.parametrize("relay_index", [0, 1, 2])
def test_pflogsumm_reports_the_expected_totals_of_a_day(
    month: tuple[Path, Expected], relay_index: int, tmp_path: Path
) -> None:
    pflogsumm = require_program("pflogsumm")
    root, expected = month
    relay = expected.relays[relay_index]
    day = date(2024, 12, 31)
    lines = [line for line in all_lines(root, relay) if line.startswith("Dec 31 ")]
    log = tmp_path / "day.log"
    log.write_text("\n".join(lines) + "\n")
    report = subprocess.run(
        [pflogsumm, f"--syslog-name={relay['syslog_name']}", str(log)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    totals = report.split("Per-Hour Traffic Summary")[0]

    def total(label: str) -> int:
        return int(re.search(rf"^\s+(\d+)\s+{label}\b", totals, re.MULTILINE)[1])

    got = {
        "received": total("received"),
        "delivered": total("delivered"),
        "deferrals": int(re.search(r"\((\d+)\s+deferrals\)", totals)[1]),
        "bounced": total("bounced"),
        "rejected": total("rejected"),
    }
    assert got == expected.pflogsumm[relay["host"]][day.isoformat()]
    assert got["delivered"] > 0 and got["deferrals"] > 0


def test_the_month_holds_every_line_kind_the_ingestion_must_survive(
    month: tuple[Path, Expected],
) -> None:
    root, expected = month
    short, long = (all_lines(root, r) for r in (expected.relays[0], expected.relays[2]))
    text = "\n".join(short + all_lines(root, expected.relays[1]) + long)
    assert [r["syslog_name"] for r in expected.relays] == ["postfix", "postfix", "postfix-out"]
    assert all(" postfix-out/" in line or " postfix/" not in line for line in long)
    assert re.search(
        r"postfix-out/qmgr\[\d+\]: [0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{10}z\w+: ", "\n".join(long)
    )
    assert re.search(r"postfix/qmgr\[\d+\]: [0-9A-F]{10,12}: ", "\n".join(short))
    for needle in (
        "/submission/smtpd[",
        "sasl_method=PLAIN, sasl_username=alice\n",
        "client=webmail.nthu.edu.tw[140.114.64.10], sasl_method=LOGIN",
        "/10025/smtpd[",
        ": client=localhost[127.0.0.1]\n",
        "relay=127.0.0.1[127.0.0.1]:10024",
        "status=bounced (host 127.0.0.1[127.0.0.1] said: 554",
        "250 2.0.0 OK  ",
        " - gsmtp)",
        "dsn=5.1.1, status=bounced",
        "dsn=5.7.26, status=bounced",
        "dsn=4.7.0, status=deferred",
        "Connection timed out",
        "postfix/error[",
        "delivery temporarily suspended",
        "status=expired, returned to sender",
        "sender non-delivery notification:",
        ": from=<>, size=",
        "NOQUEUE: reject: RCPT from",
        ": reject: RCPT from",
        "Relay access denied",
        "SASL LOGIN authentication failed: UGFzc3dvcmQ6",
        "authentication failure, sasl_username=alice\n",
        "postfix/postscreen[",
        "DNSBL rank",
        "postfix/anvil[",
        "amavis[",
        "Passed CLEAN",
        "opendkim[",
        "dovecot: auth-worker(",
        "TLS connection established",
        ": removed\n",
        "conn_use=",
        "from=<WLin@math.nthu.edu.tw>",
    ):
        assert needle in text, needle


def test_short_queue_ids_are_reused_after_removal_and_new_ids_may_be_logged_first(
    month: tuple[Path, Expected],
) -> None:
    root, expected = month
    reused = before = 0
    for relay in expected.relays[:2]:
        removed: set[str] = set()
        clients: set[str] = set()
        for line in all_lines(root, relay):
            if m := re.search(r": (\w+): client=", line):
                reused += m[1] in removed
                removed.discard(m[1])
                clients.add(m[1])
            elif m := re.search(r": (\w+): removed$", line):
                removed.add(m[1])
            elif m := re.search(r":10024, .*queued as (\w+)\)$", line):
                before += m[1] in clients
    assert reused >= 1
    assert before >= 1  # NEWID's client=localhost line came before QID1's hand-off line


def test_deferred_messages_are_retried_across_days_and_rotated_files(
    month: tuple[Path, Expected],
) -> None:
    root, expected = month
    spans = 0
    for relay in expected.relays:
        where: dict[str, set[str]] = defaultdict(set)
        for path in relay_files(root, relay):
            for line in lines_of(path):
                if m := re.search(r": (\w+): to=<.*status=deferred", line):
                    where[m[1]].add(path.name)
        spans += sum(len(files) > 1 for files in where.values())
    assert spans >= 1


def test_the_heaviest_senders_cross_an_alert_threshold_on_some_days(
    month: tuple[Path, Expected],
) -> None:
    _, expected = month
    alerts = {
        (sender, day)
        for sender, days in expected.counts.items()
        for day, row in days.items()
        if sum(row.values()) >= 250 or row.get("bounced", 0) >= 10
    }
    assert ("alice@cs.nthu.edu.tw", "2025-01-02") in alerts  # the stolen password
    assert ("noreply@nthu.edu.tw", "2024-12-30") in alerts  # Monday's announcements
    assert len(alerts) < 6
    assert all(
        set(row) <= set(COLUMNS) and all(row.values())
        for days in expected.counts.values()
        for row in days.values()
    )


def test_a_second_run_replaces_the_files_of_the_first(tmp_path: Path) -> None:
    generate(tmp_path, days=4, end=date(2025, 5, 7), messages_per_day=20)
    expected = generate(tmp_path, days=2, end=date(2025, 5, 7), messages_per_day=20)
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("*/mail.log*"))
    assert written == sorted(expected.files)


def test_the_command_writes_a_sample_and_prints_a_one_line_summary(tmp_path: Path) -> None:
    out = StringIO()
    call_command(
        "make_sample_maillog",
        "--out",
        str(tmp_path),
        "--days",
        "2",
        "--end",
        "2025-05-07",
        "--relays",
        "2",
        "--messages-per-day",
        "30",
        "--seed",
        "3",
        "--format",
        "rfc3339",
        stdout=out,
    )
    expected = Expected.load(tmp_path)
    summary = out.getvalue()
    assert summary.count("\n") == 1
    assert f"Wrote {len(expected.files)} files (2 relays), {expected.lines:,} lines" in summary
    assert "60 sender accounts" in summary
    assert expected.timezone == "Asia/Taipei" and expected.last_day == date(2025, 5, 7)
    assert [r["syslog_name"] for r in expected.relays] == ["postfix", "postfix-out"]
    assert (tmp_path / "smtp2" / "mail.log").read_text()[:4] == "2025"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "0"], "days must be at least 1"),
        (["--end", "2025-02-30"], "--end must be a date as YYYY-MM-DD"),
        (["--relays", "0"], "relays must be between 1 and 9"),
        (["--messages-per-day", "-5"], "messages per day must be at least 1"),
        (["--tz", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_the_command_refuses_bad_input_with_a_clear_message(
    tmp_path: Path, args: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("make_sample_maillog", "--out", str(tmp_path), *args)


# -- up to the present, and written whole ----------------------------------------------
def test_the_sample_month_ends_at_the_present(tmp_path):
    now = datetime(2026, 11, 20, 14, 48, 30, tzinfo=TAIPEI)
    with time_machine.travel(now, tick=False):
        expected = generate(tmp_path, days=2, relays=1, messages_per_day=200)
    assert expected.last_day == now.date()
    parser = LineParser(TAIPEI, reference=now)
    times = []
    for name in expected.files:
        path = tmp_path / name
        with gzip.open(path, "rb") if name.endswith(".gz") else open(path, "rb") as f:
            times += [rec.time for rec in map(parser.parse, f) if rec is not None]
    assert max(times) <= now
    assert max(times) > now - timedelta(hours=3)  # the day is there up to now


def test_a_month_ending_at_the_present_counts_only_the_lines_written_so_far(tmp_path):
    # the last day's events after the present were counted once, though never written
    with time_machine.travel(datetime(2026, 11, 20, 14, 48, 30, tzinfo=TAIPEI), tick=False):
        expected = generate(tmp_path, days=2, messages_per_day=300, seed=3)
    got, _ = recount(tmp_path)
    assert got == expected.counts
    assert expected.counts


def test_a_new_sample_directory_appears_whole_and_the_output_names_it(tmp_path):
    target = tmp_path / "maillog"
    out = StringIO()
    call_command(
        "make_sample_maillog",
        "--days",
        "1",
        "--end",
        "2025-05-07",
        "--out",
        str(target),
        stdout=out,
    )
    assert f"expected counts in {target / 'expected.json'}" in out.getvalue()
    assert (target / "expected.json").exists()
    assert not (tmp_path / "maillog.partial").exists()


def test_scripts_run_writes_the_sample_where_its_log_says():
    text = (REPO / "scripts" / "run").read_text()  # its log says what the command printed
    assert "make_sample_maillog --days 31 --out var/maillog\n" in text
    assert "maillog.partial" not in text
