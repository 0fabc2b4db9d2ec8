"""What campus clusters log: one log host's central file or a directory per relay, relays of
uneven traffic, and other daemons' lines and connection noise in a real relay's proportions.

The central layout is checked against the per-relay one line for line: the same seed gives the
same lines, only gathered into one file in time order.
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pytest

from smtplog.sample import Expected, generate

OPTIONS = {"days": 4, "end": date(2026, 11, 30), "messages_per_day": 200, "seed": 8}
RFC3339 = re.compile(r"^(\S+) (\S+) (\S+?)(\[\d+\])?: (.*)$")
# Postfix lines that count for nothing in a report: sessions opening and closing, TLS, anvil's
# statistics, postscreen's and dnsblog's verdicts before any SMTP, and smtpd's warnings about them
NOISE = re.compile(
    r"^(connect from|disconnect from|lost connection|\w+ TLS connection established|statistics: "
    r"|CONNECT from|PASS (OLD|NEW)|HANGUP|DISCONNECT|DNSBL rank|addr \S+ listed by"
    r"|warning: hostname|warning: non-SMTP|warning: TLS library)"
)


def lines_in_order(root: Path, expected: Expected) -> list[str]:
    """The lines of every file, oldest file first (``expected.files`` lists them so)."""
    out = []
    for name in expected.files:
        path = root / name
        with gzip.open(path, "rt") if path.suffix == ".gz" else open(path) as f:
            out += f.read().splitlines()
    return out


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Expected]]:
    """The same month (RFC 3339: microseconds order the lines) written in each layout."""
    out = {}
    for layout in ("per-relay", "central"):
        root = tmp_path_factory.mktemp(layout)
        out[layout] = root, generate(root, timestamp_format="rfc3339", layout=layout, **OPTIONS)
    return out


def test_a_central_log_holds_the_same_lines_and_counts_as_a_directory_per_relay(both) -> None:
    (relays_root, per_relay), (central_root, central) = both["per-relay"], both["central"]
    assert central.counts == per_relay.counts and central.counts
    assert central.pflogsumm == per_relay.pflogsumm
    assert central.lines == per_relay.lines
    assert sorted(lines_in_order(central_root, central)) == sorted(
        lines_in_order(relays_root, per_relay)
    )
    assert {r["directory"] for r in central.relays} == {"loghost"}
    assert [r["host"] for r in central.relays] == ["smtp1", "smtp2", "smtp3"]


def test_the_central_log_is_in_time_order_rotates_daily_and_keeps_each_relay_s_host(
    both,
) -> None:
    root, expected = both["central"]
    days = (expected.last_day - expected.first_day).days + 1
    assert expected.files == [f"loghost/mail.log.{n}.gz" for n in range(days, 1, -1)] + [
        "loghost/mail.log.1",
        "loghost/mail.log",
    ]
    assert sorted(p.relative_to(root).as_posix() for p in root.glob("*/mail.log*")) == sorted(
        expected.files
    )
    lines = lines_in_order(root, expected)
    times = [datetime.fromisoformat(line.split(" ", 1)[0]) for line in lines]
    assert times == sorted(times)
    hosts = Counter(RFC3339.match(line)[2] for line in lines)
    assert set(hosts) == {"smtp1", "smtp2", "smtp3"}
    # the relays' own syslog names come through: the last one logs as postfix-out
    assert any(" smtp3 postfix-out/qmgr[" in line for line in lines)
    assert not any(" smtp1 postfix-out/" in line for line in lines)


def test_a_run_in_the_other_layout_replaces_the_first_run_s_files(tmp_path: Path) -> None:
    options = {"days": 2, "end": date(2025, 5, 7), "messages_per_day": 20}
    generate(tmp_path, **options)
    central = generate(tmp_path, layout="central", **options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["expected.json", "loghost"]
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("*/mail.log*"))
    assert written == sorted(central.files)
    per_relay = generate(tmp_path, **options)
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("*/mail.log*"))
    assert written == sorted(per_relay.files)
    assert not (tmp_path / "loghost").exists()


def test_relay_weights_share_the_lines_about_as_asked(tmp_path: Path) -> None:
    expected = generate(tmp_path, layout="central", relay_weights=(55, 30, 15), **OPTIONS)
    hosts = Counter(line.split(" ", 4)[3] for line in lines_in_order(tmp_path, expected))
    shares = [100 * hosts[h] / expected.lines for h in ("smtp1", "smtp2", "smtp3")]
    assert shares == pytest.approx([55, 30, 15], abs=4), shares


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"layout": "loghost"}, "layout must be one of per-relay, central, not 'loghost'"),
        ({"relay_weights": (60, 40)}, "relay weights must be 3 positive numbers"),
        ({"relay_weights": (60, 40, 0)}, "relay weights must be 3 positive numbers"),
    ],
)
def test_a_bad_layout_or_bad_weights_are_refused(tmp_path: Path, options, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        generate(tmp_path, days=1, **options)


def test_other_daemons_and_postfix_noise_come_in_a_campus_relay_s_proportions(both) -> None:
    """Issue 10's campus month: ~8 % other daemons' lines, about a third of Postfix's noise."""
    root, expected = both["central"]
    programs: Counter[str] = Counter()
    for line in lines_in_order(root, expected):
        m = RFC3339.match(line)
        program, message = m[3], m[5]
        if not program.startswith("postfix"):
            programs["other"] += 1
        elif NOISE.match(message):
            programs["noise"] += 1
        else:
            programs["postfix"] += 1
    postfix = programs["noise"] + programs["postfix"]
    assert 0.05 <= programs["other"] / expected.lines <= 0.10, programs
    assert 0.30 <= programs["noise"] / postfix <= 0.42, programs
