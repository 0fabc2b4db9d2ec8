"""How the workers of a central log share its lines (reading.Share.keep): each line of a
batch is taken by exactly one worker, the one of the relay LineParser gives it."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from hypothesis import given
from hypothesis import strategies as st

from smtplog.ingest.reading import Share
from smtplog.postfix.parser import LineParser, line_host

TZ = zoneinfo.ZoneInfo("Asia/Taipei")
APART = ("smtp1", "smtp2")  # relays with a worker of their own; the rest's worker: the others

LINES = [
    b"Nov 30 06:26:53 smtp1 postfix/smtpd[29865]: connect from unknown[192.0.2.1]",
    b"Nov 30 06:26:53 smtp2 postfix/qmgr[11]: 09CDE1855BAE: removed",
    b"Nov 30 06:26:54 smtp3 postfix/qmgr[12]: 19CDE1855BAE: removed",
    b"Nov 30 06:26:54 smtp10 postfix/qmgr[12]: 29CDE1855BAE: removed",  # smtp1's prefix
    b"Nov  1 06:26:54 smtp1 postfix/qmgr[12]: 39CDE1855BAE: removed",  # space-padded day
    b"Nov 1 06:26:54 smtp2 postfix/qmgr[12]: 49CDE1855BAE: removed",  # day not padded
    b"2026-11-30T06:26:55.123456+08:00 smtp1 postfix/qmgr[13]: 59CDE1855BAE: removed",
    b"2026-11-30T06:26:55+08:00 smtp3 postfix/qmgr[13]: 69CDE1855BAE: removed",
    b"2026 Nov 30 06:26:55 smtp2 postfix/qmgr[13]: 79CDE1855BAE: removed",
    b"\x00\x00Nov 30 06:26:56 smtp1 postfix/qmgr[14]: 89CDE1855BAE: removed",  # after a crash
    b"Nov 30 06:26:56 smtp1",  # no program: no record, still some worker's line
    b"Nov 30 06:26:56 smtp1 ",
    b"",
    b"garbage",
    b"Nov 30 06:26:57 h\xc3\xb6st postfix/qmgr[15]: 99CDE1855BAE: removed",
    b"Nov 30 06:26:57 smtp2 postfix/qmgr[15]: A9CDE1855BAE: removed \xff",
]


def shares() -> list[Share]:
    return [Share(relay=relay, part=True) for relay in APART] + [Share(exclude=frozenset(APART))]


def taken_by(lines: list[bytes]) -> list[list[int]]:
    """For each line, the indexes of the shares whose keep() takes it (a line that comes
    n times in the batch must be taken n times, all by one share)."""
    kept = [share.keep(lines) for share in shares()]
    takers = []
    for line in lines:
        takers.append([n for n, batch in enumerate(kept) if line in batch])
        for n in takers[-1]:
            assert kept[n].count(line) == lines.count(line)
    return takers


def test_every_line_goes_to_exactly_one_worker():
    assert all(len(takers) == 1 for takers in taken_by(LINES))


def test_a_relays_lines_go_to_its_worker_and_the_others_to_the_rest():
    parser = LineParser(TZ, reference=dt.datetime(2026, 12, 1, tzinfo=TZ))
    for line, takers in zip(LINES, taken_by(LINES), strict=True):
        record = parser.parse(line)
        if record is not None:
            assert record.host.encode() == line_host(line)
            expected = APART.index(record.host) if record.host in APART else len(APART)
            assert takers == [expected], line
    # the rest's worker takes what has no relay at all
    rest = Share(exclude=frozenset(APART)).keep(LINES)
    assert b"" in rest and b"garbage" in rest


def test_order_is_kept():
    for share in shares():
        kept = share.keep(LINES)
        assert kept == [line for line in LINES if line in kept]


@given(
    st.lists(
        st.builds(
            lambda stamp, host, tail: stamp + host + tail,
            st.sampled_from(
                [
                    b"Nov 30 06:26:53 ",
                    b"Nov  1 06:26:53 ",
                    b"Nov 1 06:26:53 ",
                    b"2026-11-30T06:26:55Z ",
                    b"",
                    b"\x00",
                ]
            ),
            st.sampled_from([b"smtp1", b"smtp2", b"smtp3", b"smtp1x", b"", b"smtp2 "]),
            st.sampled_from([b" postfix/qmgr[1]: ABCDE12345: removed", b"", b" ", b": x"]),
        ),
        max_size=30,
    )
)
def test_any_batch_is_shared_out_whole(lines):
    assert all(len(takers) == 1 for takers in taken_by(lines))
