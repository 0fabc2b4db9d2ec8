"""Every real line of the shared corpus gives the record its kind implies, or is counted.

The corpus (../shared/corpus beside the repository) holds ~3,000 real Postfix lines from
public sources. Some files hold only the message part after `program[pid]: `; those
messages get a synthetic `Jan  1 00:00:00 corpus postfix/<daemon>[1]: ` header, the
daemon taken from the file's `# path: ... pattern: ^%{POSTFIX_<DAEMON>}` comment (grok
patterns) or, where the source does not say, from what the message is.

What each line should give is decided here by deliberately simple, separate rules
(EXPECTED), not by the parser's own code.
"""

from __future__ import annotations

import re
import zoneinfo
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from smtplog.postfix import (
    SKIP_REASONS,
    BounceNotice,
    ClientLine,
    Delivery,
    LineParser,
    MessageIdLine,
    PickupLine,
    QmgrExpired,
    QmgrFrom,
    QmgrRemoved,
    Record,
    Reject,
    SaslFailure,
)
from tests.services import missing

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
TZ = zoneinfo.ZoneInfo("Asia/Taipei")
REFERENCE = datetime(2026, 11, 20, tzinfo=TZ)
SYNTHETIC = "Jan  1 00:00:00 corpus postfix/{daemon}[1]: {message}"

FULL_LINE = re.compile(
    r"^(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-][\d:]+)"
    r"|\d{4} [A-Z][a-z]{2} \d\d [\d:.]+) \S+ (?P<program>[^\s\[]+)\[\d+\]: (?P<message>.*)$"
)
PROGRAM_ONLY = re.compile(r"^(?P<program>postfix\S*/[\w-]+)\[\d+\]: (?P<message>.*)$")
# Sources that strip the syslog header (all of it, or on some lines).
MESSAGE_ONLY = ("whyscream-postfix-grok-patterns", "SEKOIA-IO-documentation", "github-issues")
GROK = re.compile(r"^# path: \S+\s+pattern: \^%\{POSTFIX_(?P<name>\w+)\}")
GROK_DAEMONS = {
    "script": "postfix-script",
    "trivial_rewrite": "trivial-rewrite",
    "tls_features": "smtp",
}

DELIVERY_DAEMONS = {"smtp", "lmtp", "local", "virtual", "pipe", "error", "retry", "discard"}
ACTIONS = r"(?:reject|reject_warning|discard|hold|filter|redirect|milter-reject|proxy-reject)"
# (daemons, message pattern, record): the first match decides; no match: no record.
EXPECTED: list[tuple[set[str], re.Pattern[str], type[Record]]] = [
    (
        DELIVERY_DAEMONS | {"qmgr"},
        re.compile(r"^[0-9A-Za-z]{5,}: to=.*, dsn=[\d.]+, status=\S"),
        Delivery,
    ),
    ({"smtpd"}, re.compile(r"^(?!NOQUEUE)[0-9A-Za-z]{5,}: client=\S*\["), ClientLine),
    (
        {"smtpd", "postscreen", "cleanup"},
        re.compile(rf"^(?:NOQUEUE|[0-9A-Za-z]{{5,}}): {ACTIONS}: "),
        Reject,
    ),
    (
        {"smtpd"},
        re.compile(r"^warning: [^\s\[]*\[[^\]]*\]: SASL \S+ authentication failed"),
        SaslFailure,
    ),
    ({"cleanup"}, re.compile(r"^[0-9A-Za-z]{5,}: message-id="), MessageIdLine),
    ({"qmgr"}, re.compile(r"^[0-9A-Za-z]{5,}: from=<.*>, size=\d+, nrcpt=\d+"), QmgrFrom),
    ({"qmgr"}, re.compile(r"^[0-9A-Za-z]{5,}: from=<.*>, status=(?:force-)?expired"), QmgrExpired),
    ({"qmgr", "postsuper"}, re.compile(r"^[0-9A-Za-z]{5,}: removed\s*$"), QmgrRemoved),
    ({"pickup"}, re.compile(r"^[0-9A-Za-z]{5,}: uid=\d+ from=<"), PickupLine),
    (
        {"bounce"},
        re.compile(r"^[0-9A-Za-z]{5,}: (?:sender|postmaster) [a-z -]+ notification: \w+$"),
        BounceNotice,
    ),
]
# FgForrest's munging appended "XXXX" to every "WORD: " it took for a queue ID, including
# the bounce daemon's "notification:" (FG-Postfix-Deliverability-Analytics, mail.log.2.gz).
MUNGED_BOUNCE = re.compile(r"^\w+: sender non-delivery notificationXXXX: \w+$")


def daemon_of_message(message: str) -> str:
    """The daemon that logs a message, for sources that strip the syslog header."""
    rules = [
        (r"^\w+: (?:to=|host \S+ said|lost connection with|conversation with)", "smtp"),
        (r"^(?:connect to|\w+: Used TLS|Trusted TLS|Untrusted TLS|Verified TLS)", "smtp"),
        (r"^\w+: (?:from=<|removed$)", "qmgr"),
        (r"^\w+: uid=", "pickup"),
        (r"^\w+: (?:message-id=|resent-message-id=)", "cleanup"),
        (r"notification: ", "bounce"),
        (r"^statistics: ", "anvil"),
    ]
    for pattern, daemon in rules:
        if re.search(pattern, message):
            return daemon
    return "smtpd"  # client=, rejects, SASL failures, connect/disconnect, proxy-accept


def corpus_lines(path: Path) -> list[tuple[str, str | None, str]]:
    """(line to parse, daemon or None when not a Postfix line, message) of one file."""
    out = []
    grok_daemon = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith("#"):
            m = GROK.match(raw)
            if m:
                name = m.group("name").lower()
                grok_daemon = GROK_DAEMONS.get(name, name)
            continue
        if not raw.strip():
            continue
        full = FULL_LINE.match(raw)
        if full:
            program = full.group("program")
            daemon = program.rsplit("/", 1)[-1] if "/" in program else None
            out.append((raw, daemon, full.group("message")))
            continue
        only = PROGRAM_ONLY.match(raw)
        if only:
            daemon = only.group("program").rsplit("/", 1)[-1]
            message = only.group("message")
        elif path.name.startswith(MESSAGE_ONLY):
            daemon = grok_daemon or daemon_of_message(raw)
            message = raw
        else:  # not Postfix (dovecot: ...), or the rest of a line broken in its source
            out.append((raw, None, raw))
            continue
        out.append((SYNTHETIC.format(daemon=daemon, message=message), daemon, message))
    return out


def expected_record(daemon: str | None, message: str) -> type[Record] | None:
    if daemon is None:
        return None
    for daemons, pattern, kind in EXPECTED:
        if daemon in daemons and pattern.search(message):
            return kind
    return None


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.log")) if CORPUS.is_dir() else []


@pytest.fixture(scope="module")
def corpus() -> Path:
    if not corpus_files():
        missing(f"the shared corpus of real Postfix lines at {CORPUS}")
    return CORPUS


@pytest.mark.parametrize("name", [path.name for path in corpus_files()] or ["(no corpus)"])
def test_every_corpus_line_gives_its_record_or_a_skip_reason(corpus: Path, name: str) -> None:
    parser = LineParser(TZ, reference=REFERENCE)
    wrong = []
    nones = 0
    for line, daemon, message in corpus_lines(corpus / name):
        before = sum(parser.stats.values())
        rec = parser.parse(line)
        kind = expected_record(daemon, message)
        if rec is None:
            nones += 1
            assert sum(parser.stats.values()) == before + 1, line
        if type(rec) is not (kind or type(None)):
            wrong.append(f"{kind.__name__ if kind else 'skip'} expected, got {rec!r}: {line}")
    assert not wrong, "\n".join(wrong[:10])
    assert set(parser.stats) <= set(SKIP_REASONS)
    assert sum(parser.stats.values()) == nones
    assert parser.stats["parser_error"] == 0
    assert parser.stats["bad_timestamp"] == 0


def test_the_munged_bounce_lines_of_fgforrest_are_counted_unparsed(corpus: Path) -> None:
    parser = LineParser(TZ, reference=REFERENCE)
    munged = 0
    for line, _daemon, message in corpus_lines(
        corpus / "FgForrest-Postfix-Deliverability-Analytics__real_mail_log_sample.log"
    ):
        if MUNGED_BOUNCE.match(message):
            munged += 1
            assert parser.parse(line) is None
    assert munged > 0
    assert parser.stats == {"unparsed_postfix": munged}


def test_the_corpus_gives_plausible_records_of_every_kind(corpus: Path) -> None:
    kinds: Counter[str] = Counter()
    for path in corpus_files():
        parser = LineParser(TZ, reference=REFERENCE)
        for line, _daemon, _message in corpus_lines(path):
            rec = parser.parse(line)
            if rec is None:
                continue
            kinds[type(rec).__name__] += 1
            assert rec.time.tzinfo is not None
            assert rec.host and rec.daemon and rec.pid is not None
            if isinstance(rec, Delivery):
                assert re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", rec.dsn), line
                assert rec.status in {
                    "sent",
                    "deferred",
                    "bounced",
                    "expired",
                    "undeliverable-but-not-cached",
                }, line
                assert rec.queue_id and rec.relay and rec.delay is not None, line
                assert rec.relay_port is None or rec.relay_ip, line
                assert "queued as" not in rec.response or rec.queued_as, line
            if isinstance(rec, Reject):
                assert rec.client_ip or rec.action == "proxy-reject", line
    # Counts as of the shared corpus (its catalogue counts them; message-only files included).
    minimum = {
        "Delivery": 300,
        "QmgrFrom": 230,
        "QmgrRemoved": 220,
        "ClientLine": 200,
        "MessageIdLine": 200,
        "SaslFailure": 25,
        "Reject": 30,
        "QmgrExpired": 15,
        "PickupLine": 10,
        "BounceNotice": 10,
    }
    assert {kind: n for kind, n in kinds.items() if n < minimum[kind]} == {}
