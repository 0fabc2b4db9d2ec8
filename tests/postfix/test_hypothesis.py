"""Whatever it is fed, the parser answers a record or None, counts it, and never fails.

parse() catches its own exceptions (a bad line must not stop ingestion) and counts them
as "parser_error", so these tests assert that count stays 0: a crash would be a bug.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtplog.postfix import SKIP_REASONS, LineParser, Record
from smtplog.postfix.parser import line_host

TZ = zoneinfo.ZoneInfo("Asia/Taipei")
REFERENCE = datetime(2026, 11, 20, tzinfo=TZ)
CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
SETTINGS = settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])

# Real lines of every kind (docs/postfix-lines.md); the corpus adds more when it is there.
REAL_LINES = [
    "Jun  3 10:40:57 mail postfix/submission/smtpd[9708]: 4AA091855DA0: client=some.domain.name"
    "[1.2.3.4], sasl_method=PLAIN, sasl_username=user@sender.com",
    "2023-03-14T00:31:06.621091+01:00 helga postfix/submission/smtpd[303987]: 4PbCZy4PWKz3tBr: "
    "client=unknown[2a02:8109:b240:41c8:9264:99a9:1b0d:15c8], sasl_method=PLAIN, "
    "sasl_username=person@example.net",
    "2023-03-14T00:37:06.630804+01:00 helga postfix/smtpd[304356]: NOQUEUE: reject: RCPT from "
    "smtp.csp.res.in[117.244.254.50]: 450 4.1.8 <sabrina@S510.gigasys>: Sender address rejected: "
    "Domain not found; from=<sabrina@S510.gigasys> to=<person@example.net> proto=ESMTP "
    "helo=<galaxy.csp.res.in>",
    "2023-03-14T00:26:51.985219+01:00 helga postfix/postscreen[3163107]: NOQUEUE: reject: RCPT "
    "from [185.246.220.193]:62795: 550 5.7.1 Service unavailable; client [185.246.220.193] "
    "blocked using zen.spamhaus.org; from=<person@example.net>, to=<zzzzzzzzzzzzzzzzzezihe@"
    "hotmail.com>, proto=ESMTP, helo=<3BqSwxw>",
    "Dec 27 07:05:42 mail postfix/smtpd[3564]: warning: unknown[222.162.115.97]: SASL LOGIN "
    "authentication failed: UGFzc3dvcmQ6",
    "Jun  3 10:40:57 mail postfix/sender-cleanup/cleanup[9709]: 4AA091855DA0: "
    "message-id=<ca10035e-2951-bfd5-ec7e-1a5773fce1cd@mail.sender.com>",
    "Jun  3 10:40:57 mail postfix/qmgr[1005]: 4AA091855DA0: from=<user@sender.com>, size=391, "
    "nrcpt=1 (queue active)",
    "Jun  3 10:40:59 mail postfix/qmgr[1005]: 776E41855DB2: removed",
    "Sep 30 20:46:08 smtpnode16 postfix-239.58.50.50/qmgr[31214]: 23EBE3D5C0: "
    "from=<h-498b874f2bf0cf639807ad80e1@h-5e67b9b4406.com>, status=expired, returned to sender",
    "Jun  3 10:40:59 mail postfix/smtp[9890]: 776E41855DB2: to=<invalid.email@example.com>, "
    "relay=mx.example.com[11.22.33.44]:25, delay=1.9, delays=0/0/1.5/0.37, dsn=5.1.1, "
    "status=bounced (host mx.example.com[11.22.33.44] said: 550 5.1.1 "
    "<invalid.email@example.com> User unknown (in reply to RCPT TO command))",
    "2013 Jun 10 09:38:17.123 gds39d postfix/error[31488]: E7C21C2C35EXXXX: "
    "to=<P44ui4@0r4ua3f41i.sk>, relay=none, delay=364, delays=364/0.11/0/0, dsn=4.7.0, "
    "status=deferred (delivery temporarily suspended: host mail.orangema",
    "Jun  3 10:40:59 mail postfix/bounce[9719]: 776E41855DB2: sender non-delivery notification: "
    "A48191855DA0",
    "Feb  1 13:17:02 mail postfix/pickup[28541]: 08ACF1541B01: uid=42 from=<someone>",
    "Jan 25 18:54:51 mx postfix/cleanup[8966]: B37FD2E05B9: milter-reject: END-OF-MESSAGE from "
    "h-ca74a0a011076cd81347f8f11e[254.65.43.194]: 4.7.1 Try again later; from=<a@b.example> "
    "to=<h-7abde52c2@h-ffd2115d4f.com> proto=ESMTP helo=<h-ca74a0a011076cd81347f8f11e>",
    "Jan 27 06:36:56 mail dovecot: imap-login: Login: user=<h-304@h-ffeb17e38996c.com>, "
    "method=LOGIN, rip=224.165.23.115, lip=170.45.1.1, mpid=21711, TLS",
]


def real_lines() -> list[str]:
    lines = list(REAL_LINES)
    for path in sorted(CORPUS.glob("*.log")) if CORPUS.is_dir() else []:
        lines += [
            line
            for line in path.read_text(encoding="utf-8").splitlines()
            if line and not line.startswith("#")
        ]
    return lines


LINES = real_lines()
DAEMONS = [
    "smtpd",
    "smtp",
    "qmgr",
    "cleanup",
    "pickup",
    "bounce",
    "postscreen",
    "postsuper",
    "lmtp",
    "local",
    "virtual",
    "pipe",
    "error",
    "discard",
    "anvil",
]
# Pieces the grammars look for, so random messages reach deep into them.
WORDS = [
    "to=<",
    "to=",
    "from=<",
    ">",
    ", ",
    "relay=",
    "[",
    "]",
    ":",
    "25",
    "delay=",
    "dsn=",
    "status=",
    "sent",
    " (",
    ")",
    "queued as ",
    "NOQUEUE",
    ": ",
    "reject",
    "RCPT",
    " from ",
    "; from=<",
    "; to=<",
    "proto=",
    "helo=<",
    "client=",
    "sasl_method=",
    "sasl_username=",
    "warning: ",
    "SASL",
    " authentication failed",
    "message-id=",
    "size=",
    "nrcpt=",
    "removed",
    "uid=",
    "notification: ",
    "header ",
    "4AA091855DA0",
    "4PbC4x469Jz3tBr",
    "1.2.3.4",
    "2a02:8109::15c8",
    "\x00",
    "\ufffd",
    " ",
    "5.1.1",
    "550",
]


def check(parser: LineParser, line: str | bytes) -> None:
    before = sum(parser.stats.values())
    rec = parser.parse(line)
    after = sum(parser.stats.values())
    assert parser.stats["parser_error"] == 0, line
    assert set(parser.stats) <= set(SKIP_REASONS)
    if rec is None:
        assert after == before + 1
    else:
        assert isinstance(rec, Record)
        assert after == before
        assert rec.time.tzinfo is not None
        assert isinstance(rec.host, str) and isinstance(rec.daemon, str)
        assert "\x00" not in repr(rec)


@SETTINGS
@given(st.text(max_size=400))
def test_arbitrary_text_never_raises(text: str) -> None:
    check(LineParser(TZ, reference=REFERENCE), text)


@SETTINGS
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    check(LineParser(TZ, reference=REFERENCE), data)


@SETTINGS
@given(
    stamp=st.sampled_from(
        [
            "Jun  3 10:40:59",
            "Feb 29 23:59:59",
            "2023-03-14T00:08:35+01:00",
            "2013 Jun 10 09:38:17.123",
            "Dec 31 24:00:00",
            "Jan 1 00:00:00",
        ]
    ),
    daemon=st.sampled_from(DAEMONS),
    message=st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=8)), max_size=30),
)
def test_postfix_headers_with_random_messages_never_raise(
    stamp: str, daemon: str, message: list[str]
) -> None:
    parser = LineParser(TZ, reference=REFERENCE)
    line = f"{stamp} relay1 postfix/{daemon}[123]: {''.join(message)}"
    check(parser, line)
    check(parser, line.encode("utf-8", "surrogatepass"))
    rec = parser.parse_message(daemon, "".join(message), time=REFERENCE)
    assert rec is None or isinstance(rec, Record)
    assert parser.stats["parser_error"] == 0


@SETTINGS
@given(st.data())
def test_lines_spliced_from_fragments_of_real_lines_never_raise(data: st.DataObject) -> None:
    parser = LineParser(TZ, reference=REFERENCE)
    first = data.draw(st.sampled_from(LINES))
    second = data.draw(st.sampled_from(LINES))
    cut = data.draw(st.integers(0, len(first)))
    join = data.draw(st.integers(0, len(second)))
    check(parser, first[:cut])  # truncated
    check(parser, first[:cut] + second[join:])  # spliced
    tokens = first.split(" ")
    order = data.draw(st.permutations(range(len(tokens))))
    check(parser, " ".join(tokens[i] for i in order))  # shuffled words
    noise = data.draw(st.text(max_size=5))
    check(parser, first[:cut] + noise + first[cut:])  # something inserted
    raw = first.encode()
    flip = data.draw(st.integers(0, max(len(raw) - 1, 0)))
    check(parser, raw[:flip] + bytes([data.draw(st.integers(0, 255))]) + raw[flip + 1 :])
    check(parser, first * data.draw(st.integers(2, 4)))  # repeated, as a lost newline does


START = datetime(2001, 1, 1, tzinfo=TZ)
SECONDS_IN_36_YEARS = 36 * 366 * 86400


@SETTINGS
@given(st.lists(st.integers(0, SECONDS_IN_36_YEARS), min_size=1, max_size=20))
def test_classic_timestamps_read_back_in_order_give_their_times(seconds: list[int]) -> None:
    # Logs are in time order, and months apart at most between lines.
    moments: list[datetime] = []
    for moment in sorted(START + timedelta(seconds=n) for n in seconds):
        if not moments or moment - moments[-1] < timedelta(days=90):
            moments.append(moment)
    parser = LineParser(TZ, reference=moments[-1])
    parser.year, parser.last_month = moments[0].year, moments[0].month
    for moment in moments:
        stamp = f"{moment:%b} {moment.day:2d} {moment:%H:%M:%S}"
        rec = parser.parse(f"{stamp} mail postfix/qmgr[1]: 776E41855DB2: removed")
        assert rec is not None
        assert rec.time == moment
        assert rec.time.tzinfo is TZ


@SETTINGS
@given(
    microseconds=st.integers(0, 100 * 366 * 86400 * 10**6),
    minutes=st.integers(-14 * 60 + 1, 14 * 60 - 1),
    colon=st.booleans(),
)
def test_rfc3339_timestamps_read_back_as_the_same_instant(
    microseconds: int, minutes: int, colon: bool
) -> None:
    moment = datetime(1990, 1, 1, tzinfo=UTC) + timedelta(microseconds=microseconds)
    offset = timezone(timedelta(minutes=minutes))
    stamp = moment.astimezone(offset).isoformat()
    if not colon:
        stamp = stamp[:-3] + stamp[-2:]  # ±HHMM
    rec = LineParser(TZ, reference=REFERENCE).parse(
        f"{stamp} mail postfix/qmgr[1]: 776E41855DB2: removed"
    )
    assert rec is not None
    assert rec.time == moment
    assert rec.time.utcoffset() == timedelta(minutes=minutes)


# -- the raw-bytes skip (parse decides some lines before decoding them) -----------------
HEADS = [
    "Jun  3 10:40:57 mail postfix/submission/smtpd[9708]",
    "Jun  3 10:40:57 mail postfix/smtp[9890]",
    "Jun  3 10:40:57 mail postfix/qmgr[1005]",
    "Jun  3 10:40:57 mail postfix/anvil[18492]",
    "Jun  3 10:40:57 mail amavis[2279]",
    "Jun  3 10:40:57 mail dovecot",
    "2023-03-14T00:00:31.185246+01:00 helga postfix/postscreen[3163107]",
    "2023-03-14T00:00:31.185246+01:00 helga postfix/pickup[1]",
    "2013 Jun 10 09:38:17.123 gds39d postfix/bounce[31488]",
    "Jun 3 10:40:57 mail postfix/cleanup[9709]",
    "Jun  3 10:40:57 mail postfix/postsuper[7]",
    "Jun  3 10:40:57 mail postfix/local[16460]",
]


def _outcome(parser: LineParser, line: str | bytes) -> tuple:
    before = parser.stats
    rec = parser.parse(line)
    return rec, parser.stats - before


@SETTINGS
@given(st.data())
def test_bytes_and_text_give_the_same_records_and_skip_reasons(data: st.DataObject) -> None:
    # parse() skips some lines from their raw bytes when their `host program[pid]` was
    # seen before; text input never takes that path. Fed the same lines, both must agree.
    as_bytes = LineParser(TZ, reference=REFERENCE)
    as_text = LineParser(TZ, reference=REFERENCE)
    messages = [line.partition("]: ")[2] or line for line in LINES]
    for _ in range(data.draw(st.integers(1, 12))):
        head = data.draw(st.sampled_from(HEADS))
        message = data.draw(
            st.one_of(
                st.sampled_from(messages),
                st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=6)), max_size=12).map(
                    "".join
                ),
            )
        )
        end = data.draw(st.sampled_from(["", "\n", "\r\n", "\r"]))
        line = f"{head}: {message}{end}"
        if data.draw(st.booleans()):
            line = line[: data.draw(st.integers(0, len(line)))]
        raw = line.encode("utf-8", "replace")
        text = raw.decode()
        assert _outcome(as_bytes, raw) == _outcome(as_text, text), raw
    assert as_bytes.stats == as_text.stats
    assert as_bytes.stats["parser_error"] == 0


# -- line_host -----------------------------------------------------------------------------
def _agrees(line: bytes) -> None:
    host = line_host(line)
    rec = LineParser(TZ, reference=REFERENCE).parse(line)
    if rec is not None:
        assert host is not None, line
        assert host.decode("utf-8", "replace") == rec.host, line


def test_line_host_agrees_with_parse_on_every_real_line() -> None:
    for line in LINES:
        _agrees(line.encode())
        _agrees(b"\x00\x00" + line.encode() + b"\r\n")


@SETTINGS
@given(
    stamp=st.sampled_from(
        [
            "Jun  3 10:40:59",
            "Jan 1 00:00:00",
            "Dec 27 07:05:42",
            "2023-03-14T00:08:35+01:00",
            "2026-01-27T07:00:04.123456+08:00",
            "2013 Jun 10 09:38:17.123",
            "2026 Jan 27 07:00:04",
        ]
    ),
    host=st.text(min_size=0, max_size=12),
    daemon=st.sampled_from(DAEMONS),
    message=st.sampled_from([line.partition("]: ")[2] for line in LINES[:40]]),
    before=st.sampled_from(["", "\x00", " ", "é"]),
)
def test_line_host_agrees_with_parse_on_generated_lines(
    stamp: str, host: str, daemon: str, message: str, before: str
) -> None:
    line = f"{before}{stamp} {host} postfix/{daemon}[12]: {message}"
    _agrees(line.encode("utf-8", "surrogatepass"))
    _agrees(line.encode("utf-8", "surrogatepass")[: len(line) // 2])


@SETTINGS
@given(st.binary(max_size=120))
def test_line_host_never_raises(data: bytes) -> None:
    _agrees(data)
    _agrees(b"Jun  3 10:40:59 " + data)
    _agrees(b"2023-03-14T00:08:35+01:00 " + data)


@SETTINGS
@given(
    host=st.text("ab-. [", min_size=0, max_size=4),
    program=st.text("pstfx/dmq[] ", min_size=0, max_size=10),
    daemon=st.sampled_from(["smtpd", "qmgr", "smtp", "anvil", "", "smtp d"]),
    pid=st.text("0123456789x []", min_size=0, max_size=5),
    bracketed=st.booleans(),
)
def test_a_head_split_from_its_programs_split_is_the_whole_split(
    host, program, daemon, pid, bracketed
):
    """The split of `host program[pid]` remembered without its pid (a new process costs a
    lookup) is exactly the split of the whole key, for any head: the same host, daemon,
    pid and handler, or the same reason to skip it."""
    from smtplog.postfix.parser import _split_key

    key = f"{host} {program}/{daemon}" + (f"[{pid}]" if bracketed else pid)
    parser = LineParser(TZ, REFERENCE)
    for _ in range(2):  # the second time, as remembered
        assert parser._split_head(key) == _split_key(key)
    other = key.rpartition("[")[0] + "[4242]" if bracketed else key
    assert parser._split_head(other) == _split_key(other)


def _shortcut_is_exact(msg: str) -> None:
    """smtpd skips a message with a space before its first ": " (TLS, SSL_accept, improper
    pipelining...) without running its regex: that is exact only if the regex never
    matches such a message."""
    from smtplog.postfix.parser import _SMTPD

    colon = msg.find(": ")
    if colon >= 0 and " " in msg[:colon]:
        assert _SMTPD.match(msg) is None, msg


def test_smtpd_shortcut_is_exact_on_real_lines() -> None:
    for line in LINES:
        _shortcut_is_exact(line.partition("]: ")[2])


@SETTINGS
@given(
    st.lists(
        st.one_of(
            st.sampled_from([*WORDS, "TLS connection established from "]), st.text(max_size=6)
        ),
        max_size=20,
    )
)
def test_smtpd_shortcut_is_exact_on_random_messages(message: list[str]) -> None:
    _shortcut_is_exact("".join(message))
