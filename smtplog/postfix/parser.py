"""The Postfix log line parser: one syslog line in, one typed record (or None) out.

A line is `<timestamp> <host> <syslog_name>/<...>/<daemon>[<pid>]: <message>`
(POSTFIX-FORMATS.md §1). Work per line is kept small because a month of a campus relay
is millions of lines, most of them useless here:

1. decode (invalid UTF-8 is replaced, not refused), refuse over-long lines;
2. locate the timestamp form by fixed positions, then `host program[pid]` by str.find,
   split once and remembered (a relay has few hosts and programs, a process many lines);
3. dispatch on the daemon name (the last path element of the program) through a dict,
   so postscreen, dnsblog, anvil, tlsproxy... and non-Postfix programs (amavis,
   dovecot, opendkim...) are dropped before any regex;
4. each daemon's handler tests literal prefixes (`to=`, `client=`, `from=<`...) before
   running the one module-level regex of that line kind;
5. only a line that yields a record has its timestamp parsed (which also moves the
   classic-timestamp year inference) and is checked for NUL characters.

Lines that give no record are counted in `LineParser.stats` by reason (SKIP_REASONS).
`parse` never raises.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo

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
from smtplog.postfix.timestamps import SyslogClock

# Reasons a line gives no record (the keys of LineParser.stats).
EMPTY = "empty"  # nothing but whitespace
NUL = "nul"  # NUL bytes inside the line (a crash-hole of a syslog file); leading NULs are dropped
TOO_LONG = "too_long"  # over MAX_LINE bytes (characters for str input)
NOT_SYSLOG = "not_syslog"  # no recognisable `timestamp host program: ` header
NOT_POSTFIX = "not_postfix"  # program without `[pid]` or without a `/` (dovecot, amavis...)
UNINTERESTING = "uninteresting"  # a Postfix line of no use here (postscreen, connect, TLS...)
UNPARSED = "unparsed_postfix"  # looked like a kind we parse, but its grammar did not match
BAD_TIMESTAMP = "bad_timestamp"  # a useful line whose timestamp is not a valid time
PARSER_ERROR = "parser_error"  # a bug in this module; the line is skipped, never fatal
SKIP_REASONS = (EMPTY, NUL, TOO_LONG, NOT_SYSLOG, NOT_POSTFIX, UNINTERESTING, UNPARSED,
                BAD_TIMESTAMP, PARSER_ERROR)

MAX_LINE = 64 * 1024

# Records are built before their timestamp is parsed; parse() fills time, host, pid in.
_PENDING = datetime(1970, 1, 1, tzinfo=UTC)

# A queue ID is the token before the message's first ": " (POSTFIX-FORMATS §4): short
# (hex), long (base 52) or munged, so any 5-32 ASCII alphanumerics; the grammar of the
# rest of the line is what makes it one.
_QID_SCAN = 34
_ACTION_SCAN = 20
# "host program[pid]" is looked for within this many characters after the timestamp, and
# at most this many of them are remembered.
_HEAD_SCAN = 320
_HEADS_KEPT = 4096

# Policy actions logged with a `; from=<...> to=<...>` tail: smtpd access/milter
# decisions, postscreen, the before-queue proxy, cleanup header/body checks.
REJECT_ACTIONS = frozenset({
    "reject", "reject_warning", "discard", "hold", "filter", "redirect",
    "milter-reject", "milter-discard", "milter-hold", "proxy-reject",
})

_DELIVERY = re.compile(
    r"to=(?:<(?P<to>[^>]*)>|(?P<to_bare>[^,]*)), "
    r"(?:orig_to=(?:<(?P<orig>[^>]*)>|(?P<orig_bare>[^,]*)), )?"
    r"relay=(?P<relay>(?P<relay_host>[^,\[]*)\[(?P<relay_ip>[^\],]*)\]"
    r"(?::(?P<relay_port>\d{1,5}))?|[^,]*), "
    r"(?:[a-z_]+=[^,]*, )*?"  # conn_use=N, and whatever a newer Postfix adds
    r"delay=(?P<delay>[^,]*), "
    r"(?:[a-z_]+=[^,]*, )*?"  # delays=a/b/c/d, tls=...
    r"dsn=(?P<dsn>[^,]*), "
    r"(?:[a-z_]+=[^,]*, )*?"
    r"status=(?P<status>[^\s(]*)"
    r"(?: \((?P<response>.*)\)| \(?(?P<cut>.*))?"  # up to the LAST ")"; a line cut short
)
_QUEUED_AS = re.compile(r"queued as ([0-9A-Za-z]+)")
_CLIENT = re.compile(
    r"client=(?P<name>[^\s\[]*)\[(?P<ip>[^\]]*)\](?::\d{1,5})?"
    r"(?:, sasl_method=(?P<method>[^,]*))?(?:, sasl_username=(?P<user>[^,]*))?"
)
_SASL_FAILED = re.compile(
    r"warning: (?P<name>[^\s\[]*)\[(?P<ip>[^\]]*)\](?::\d{1,5})?: "
    r"SASL (?P<method>[^\s:]+) authentication failed(?::? ?(?P<reason>.*?))?"
    r"(?:, sasl_username=(?P<user>.*))?$"
)
_QMGR_FROM = re.compile(r"from=<(?P<sender>.*?)>, size=(?P<size>\d{1,18}), "
                        r"nrcpt=(?P<nrcpt>\d{1,9})")
_QMGR_EXPIRED = re.compile(r"from=<(?P<sender>.*?)>, status=(?P<forced>force-)?expired\b")
_PICKUP = re.compile(r"uid=\d{1,10} from=<(?P<sender>.*)>")
_BOUNCE = re.compile(r"(?P<who>sender|postmaster) (?P<kind>[a-z][a-z -]*?) notification: "
                     r"(?P<ndn>[0-9A-Za-z]+)")
# `STAGE[ from name[ip][:port]]: ` (postscreen logs `[ip]:port` without a name,
# proxy-reject no client at all).
_REJECT_HEAD = re.compile(
    r"(?P<stage>[A-Za-z][\w-]*)(?: from (?P<name>[^\s\[]*)\[(?P<ip>[^\]]*)\](?::\d{1,5})?)?: "
)
# cleanup header/body checks: `header Subject: ... from name[ip]; from=<a> to=<b> ...`
_CHECK_HEAD = re.compile(
    r"(?P<stage>header|body) (?P<what>.*) from (?P<client>[^\s;]*); (?=from=<|to=<)"
)
_TAIL = re.compile(  # smtpd: `from=<a> to=<b> proto=P helo=<h>`; postscreen: comma-separated
    r"(?:from=<(?P<sender>[^>]*)>,? ?)?(?:to=<(?P<recipient>[^>]*)>,? ?)?"
    r"(?:proto=[^\s,]*,? ?)?(?:helo=<(?P<helo>[^>]*)>)?"
)
_REPLY = re.compile(
    r"(?:(?P<code>[2-5]\d\d)[ -])?(?:(?P<dsn>[2-5]\.\d{1,3}\.\d{1,3})(?: |$))?(?P<text>.*)"
)

Handler = Callable[[str], "Record | str"]


def _is_qid(token: str) -> bool:
    return len(token) >= 5 and token.isascii() and token.isalnum()


def _unbracket(value: str) -> str:
    """A message-id as logged, without its angle brackets (and what trails them)."""
    value = value.strip()
    if value.startswith("<"):
        end = value.find(">")
        return value[1:end] if end > 0 else value[1:]
    return value


def _delay(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 <= value < 1e12 else None  # also drops nan and inf


def _split_client(client: str) -> tuple[str, str]:
    """`name[ip]` -> (name, ip); `local` -> ("local", "")."""
    bracket = client.rfind("[")
    if bracket >= 0 and client.endswith("]"):
        return client[:bracket], client[bracket + 1:-1]
    return client, ""


class LineParser:
    """Parses the lines of one log stream (one file, in order).

    tz: the zone of classic (zone-less) timestamps, and of RFC 3339 stamps without an
    offset. reference: anchors the year of classic timestamps (the file's mtime) unless
    restored state (year, last_month) is given; neither: now().

    stats counts the lines that gave no record, by reason (SKIP_REASONS): the sum of
    stats is exactly the number of parse() calls that returned None. Invalid UTF-8 is
    not a reason to skip: such a line is decoded with U+FFFD replacements and parsed;
    replaced_utf8 counts those lines.
    """

    def __init__(self, tz: tzinfo, reference: datetime | None = None, year: int | None = None,
                 last_month: int | None = None):
        self.tz = tz
        self.clock = SyslogClock(tz, reference, year, last_month)
        self._skips = dict.fromkeys(SKIP_REASONS, 0)  # behind stats: a dict counts faster
        self.replaced_utf8 = 0
        self._heads: dict[str, tuple[str, str, int | None, Handler] | str] = {}
        delivery = self._delivery
        self._handlers: dict[str, Handler] = {
            "smtpd": self._smtpd,
            "qmgr": self._qmgr,
            "oqmgr": self._qmgr,
            "cleanup": self._cleanup,
            "pickup": self._pickup,
            "bounce": self._bounce,
            "postscreen": self._postscreen,
            "postsuper": self._postsuper,
            "smtp": delivery,
            "lmtp": delivery,
            "local": delivery,
            "virtual": delivery,
            "pipe": delivery,
            "error": delivery,
            "retry": delivery,
            "discard": delivery,
        }

    @property
    def stats(self) -> Counter[str]:
        """Lines skipped so far, by reason (a snapshot; reasons never met are left out)."""
        return Counter({reason: n for reason, n in self._skips.items() if n})

    # -- the year inference state a caller persists between runs ----------------------
    @property
    def year(self) -> int | None:
        return self.clock.year

    @year.setter
    def year(self, value: int | None) -> None:
        self.clock.set_state(value, self.clock.last_month)

    @property
    def last_month(self) -> int | None:
        return self.clock.last_month

    @last_month.setter
    def last_month(self, value: int | None) -> None:
        self.clock.set_state(self.clock.year, value)

    # -- entry points -----------------------------------------------------------------
    def parse(self, line: bytes | str) -> Record | None:
        """The record of one log line (without or with its newline), or None. Never raises."""
        skips = self._skips
        try:
            if line.__class__ is bytes:
                if len(line) > MAX_LINE:
                    skips[TOO_LONG] += 1
                    return None
                try:
                    text = line.decode()
                except UnicodeDecodeError:
                    text = line.decode("utf-8", "replace")
                    self.replaced_utf8 += 1
            elif line.__class__ is str:
                if len(line) > MAX_LINE:
                    skips[TOO_LONG] += 1
                    return None
                text = line
            else:
                return self._parse_other(line)
            text = text.rstrip("\r\n")

            # The timestamp's form, by fixed positions.
            if text[15:16] == " " and "A" <= text[:1] <= "Z":  # classic "Mmm dd hh:mm:ss"
                form = 0
                stamp_end = 15
            elif "0" <= text[:1] <= "9":
                if text[10:11] == "T" and text[4:5] == "-":  # RFC 3339
                    form = 1
                    stamp_end = text.find(" ", 19, 40)
                elif text[4:5] == " ":  # "YYYY Mmm dd hh:mm:ss[.fff]"
                    form = 2
                    stamp_end = text.find(" ", 20, 32)
                else:
                    stamp_end = -1
                if stamp_end < 0:
                    skips[NOT_SYSLOG] += 1
                    return None
            elif text[14:15] == " " and text[5:6] == " " and "A" <= text[:1] <= "Z":
                form = 3  # a classic day not space-padded: "Mmm d hh:mm:ss"
                stamp_end = 14
            else:
                return self._parse_odd(text)

            # "host program[pid]" -> (host, daemon, pid, handler), cached: a relay has few
            # hosts and programs, and a process logs many lines.
            colon = text.find(": ", stamp_end + 1, stamp_end + _HEAD_SCAN)
            if colon < 0:
                skips[NOT_SYSLOG] += 1
                return None
            key = text[stamp_end + 1:colon]
            head = self._heads.get(key)
            if head is None:
                head = self._head(key)
            if head.__class__ is str:
                skips[head] += 1
                return None
            host, daemon, pid, handler = head

            rec = handler(text[colon + 2:])
            if rec.__class__ is str:
                skips[rec] += 1
                return None
            if "\x00" in text:  # only record lines pay for this check
                skips[NUL] += 1
                return None
            if form == 0:
                time = self.clock.classic(text[:15])
            elif form == 1:
                time = self.clock.rfc3339(text[:stamp_end])
            elif form == 2:
                time = self.clock.year_prefixed(text[:stamp_end])
            else:
                time = self.clock.classic(f"{text[:4]} {text[4:14]}")
            if time is None:
                skips[BAD_TIMESTAMP] += 1
                return None
            rec.time = time
            rec.host = host
            rec.daemon = daemon
            rec.pid = pid
            return rec
        except Exception:  # a bug here must cost one line, never the ingestion run
            skips[PARSER_ERROR] += 1
            return None

    def _parse_other(self, line: object) -> Record | None:
        if isinstance(line, (bytes, bytearray, memoryview)):
            return self.parse(bytes(line))
        if isinstance(line, str):
            return self.parse(str.__str__(line))
        self._skips[NOT_SYSLOG] += 1
        return None

    def _parse_odd(self, text: str) -> Record | None:
        """A line that starts with neither a letter nor a digit."""
        if not text or text.isspace():
            self._skips[EMPTY] += 1
            return None
        if text[0] == "\x00":
            text = text.lstrip("\x00")  # the hole a crash leaves before the next line
            if text:
                return self.parse(text)
            self._skips[NUL] += 1
            return None
        self._skips[NOT_SYSLOG] += 1
        return None

    def _head(self, key: str) -> tuple[str, str, int | None, Handler] | str:
        """Split and remember `host syslog_name/.../daemon[pid]`, or the reason to skip."""
        heads = self._heads
        if len(heads) >= _HEADS_KEPT:
            heads.clear()
        head: tuple[str, str, int | None, Handler] | str
        space = key.find(" ")
        bracket = key.rfind("[")
        slash = key.rfind("/", 0, bracket)
        if space <= 0 or key.find(" ", space + 1) >= 0:
            head = NOT_SYSLOG
        elif bracket < space or slash < space or not key.endswith("]"):
            head = NOT_POSTFIX  # dovecot: ..., amavis[123]: ...
        else:
            daemon = key[slash + 1:bracket]
            handler = self._handlers.get(daemon)
            if handler is None:
                head = UNINTERESTING  # anvil, dnsblog, tlsproxy, master, scache...
            else:
                pid = key[bracket + 1:-1]
                head = (key[:space], daemon,
                        int(pid) if pid.isdecimal() and len(pid) < 16 else None, handler)
        heads[key] = head
        return head

    def parse_message(self, program: str, message: str, *, time: datetime, host: str = "",
                      pid: int | None = None) -> Record | None:
        """The record of a message whose syslog header came separately (journald's
        SYSLOG_IDENTIFIER, _PID, MESSAGE; or the message-only samples of the corpus).

        program is `postfix/smtp` or just the daemon name `smtp`. Never raises.
        """
        try:
            text = message.rstrip("\r\n")
            reason = self._refuse(text)
            if reason:
                self._skips[reason] += 1
                return None
            daemon = program[program.rfind("/") + 1:]
            handler = self._handlers.get(daemon)
            rec = handler(text) if handler is not None else UNINTERESTING
            if rec.__class__ is str:
                self._skips[rec] += 1
                return None
            rec.time = time
            rec.host = host
            rec.daemon = daemon
            rec.pid = pid
            return rec
        except Exception:
            self._skips[PARSER_ERROR] += 1
            return None

    @staticmethod
    def _refuse(text: str) -> str:
        if len(text) > MAX_LINE:
            return TOO_LONG
        if not text or text.isspace():
            return EMPTY
        if "\x00" in text:
            return NUL
        return ""

    # -- one handler per daemon: message -> record, or the reason to skip -------------
    def _smtpd(self, msg: str) -> Record | str:
        if msg.startswith("warning: "):
            if "authentication failed" in msg:
                return _sasl_failure(msg)
            return UNINTERESTING  # the Cyrus "SASL authentication failure" names nobody
        i = msg.find(": ", 0, _QID_SCAN)
        if i < 0:
            return UNINTERESTING  # connect, disconnect, lost connection, timeout...
        qid: str | None = msg[:i]
        p = i + 2
        if qid == "NOQUEUE":
            qid = None
        elif i < 5 or not (qid.isalnum() and qid.isascii()):
            return UNINTERESTING
        if msg.startswith("client=", p):
            if qid is None:
                return UNINTERESTING  # `NOQUEUE: client=`: a before-queue proxy's session
            return _client(msg, p, qid)
        j = msg.find(": ", p, p + _ACTION_SCAN)
        if j > 0:
            action = msg[p:j]
            if action in REJECT_ACTIONS:
                return _reject(msg, j + 2, action, qid)
        return UNINTERESTING

    def _qmgr(self, msg: str) -> Record | str:
        i = msg.find(": ", 0, _QID_SCAN)
        if i < 0:
            return UNINTERESTING
        qid = msg[:i]
        if i < 5 or not (qid.isalnum() and qid.isascii()):
            return UNINTERESTING  # warning: ...
        p = i + 2
        if msg.startswith("from=<", p):
            m = _QMGR_FROM.match(msg, p)
            if m is not None:
                return QmgrFrom(_PENDING, "", "", None, qid, m.group("sender"),
                                int(m.group("size")), int(m.group("nrcpt")))
            m = _QMGR_EXPIRED.match(msg, p)
            if m is not None:
                return QmgrExpired(_PENDING, "", "", None, qid, m.group("sender"),
                                   m.group("forced") is not None)
            return UNPARSED
        if msg.startswith("removed", p):
            return _removed(msg, p, qid)
        if msg.startswith("to=", p):
            return _delivery(msg, p, qid)
        return UNINTERESTING  # skipped, still being delivered; ...

    def _delivery(self, msg: str) -> Record | str:
        i = msg.find(": ", 0, _QID_SCAN)
        if i < 0 or not msg.startswith("to=", i + 2):
            return UNPARSED if msg.startswith("to=") else UNINTERESTING
        qid = msg[:i]
        if i < 5 or not (qid.isalnum() and qid.isascii()):
            return UNPARSED
        return _delivery(msg, i + 2, qid)

    def _cleanup(self, msg: str) -> Record | str:
        i = msg.find(": ", 0, _QID_SCAN)
        if i < 0:
            return UNINTERESTING
        qid = msg[:i]
        if i < 5 or not (qid.isalnum() and qid.isascii()):
            return UNINTERESTING
        p = i + 2
        if msg.startswith("message-id=", p):
            return MessageIdLine(_PENDING, "", "", None, qid, _unbracket(msg[p + 11:]))
        j = msg.find(": ", p, p + _ACTION_SCAN)
        if j > 0:
            action = msg[p:j]
            if action in REJECT_ACTIONS:
                return _reject(msg, j + 2, action, qid)
        return UNINTERESTING  # header warning/info/replace/prepend, resent-message-id...

    def _pickup(self, msg: str) -> Record | str:
        i = msg.find(": ", 0, _QID_SCAN)
        if i < 0 or not msg.startswith("uid=", i + 2):
            return UNINTERESTING
        qid = msg[:i]
        m = _PICKUP.match(msg, i + 2)
        if m is None or not _is_qid(qid):
            return UNPARSED
        return PickupLine(_PENDING, "", "", None, qid, m.group("sender"))

    def _bounce(self, msg: str) -> Record | str:
        i = msg.find(": ", 0, _QID_SCAN)
        if i < 0 or msg.find(" notification", i) < 0:
            return UNINTERESTING
        qid = msg[:i]
        m = _BOUNCE.match(msg, i + 2)
        if m is None or not _is_qid(qid):
            return UNPARSED
        kind = m.group("kind")
        if m.group("who") == "postmaster":
            kind = "postmaster " + kind
        return BounceNotice(_PENDING, "", "", None, qid, kind, m.group("ndn"))

    def _postscreen(self, msg: str) -> Record | str:
        if msg.startswith("NOQUEUE: "):
            j = msg.find(": ", 9, 9 + _ACTION_SCAN)
            if j > 0:
                action = msg[9:j]
                if action in REJECT_ACTIONS:
                    return _reject(msg, j + 2, action, None)
        return UNINTERESTING  # CONNECT, PASS, DNSBL, HANGUP, PREGREET...

    def _postsuper(self, msg: str) -> Record | str:
        i = msg.find(": removed", 0, _QID_SCAN + 7)
        if i < 0 or not _is_qid(msg[:i]):
            return UNINTERESTING  # requeued, placed on hold, Deleted: N messages...
        return _removed(msg, i + 2, msg[:i])


# -- grammars shared by several daemons ------------------------------------------------
def _removed(msg: str, p: int, qid: str) -> Record | str:
    if len(msg) > p + 7 and not msg[p + 7:].isspace():
        return UNINTERESTING
    return QmgrRemoved(_PENDING, "", "", None, qid)


def _delivery(msg: str, p: int, qid: str) -> Record | str:
    m = _DELIVERY.match(msg, p)
    if m is None:
        return UNPARSED
    (to, to_bare, orig, orig_bare, relay, relay_host, relay_ip, relay_port, delay, dsn, status,
     response, cut) = m.groups()
    if response is None:
        response = cut or ""
    queued_as = None
    if "queued as " in response:
        q = _QUEUED_AS.search(response)
        if q is not None:
            queued_as = q.group(1)
    if relay_ip is None or "/" in relay_ip:  # none, local, host[/path/of/socket]
        relay_host = relay
        relay_ip = ""
        relay_port = None
    return Delivery(
        _PENDING, "", "", None, qid,
        to if to is not None else to_bare,
        orig if orig is not None else (orig_bare or ""),
        relay, relay_host, relay_ip, int(relay_port) if relay_port else None,
        _delay(delay) if delay else None, dsn, status, response, queued_as,
    )


def _client(msg: str, p: int, qid: str) -> Record | str:
    m = _CLIENT.match(msg, p)
    if m is None:
        return UNPARSED
    name, ip, method, user = m.groups()
    return ClientLine(_PENDING, "", "", None, qid, name, ip, method or "", user or "")


def _sasl_failure(msg: str) -> Record | str:
    m = _SASL_FAILED.match(msg)
    if m is None:
        return UNPARSED
    name, ip, method, reason, user = m.groups()
    return SaslFailure(_PENDING, "", "", None, None, name, ip, method, reason or "", user or "")


def _reject(msg: str, p: int, action: str, qid: str | None) -> Record | str:
    """`STAGE from name[ip]: CODE DSN TEXT; from=<a> to=<b> proto=P helo=<h>` at p."""
    m = _REJECT_HEAD.match(msg, p)
    if m is None:
        return _check_reject(msg, p, action, qid)
    stage, name, ip = m.groups()
    start = m.end()
    tail = msg.rfind("; from=<", start)
    if tail < 0:
        tail = msg.rfind("; to=<", start)
    if tail < 0:
        end = len(msg)
        sender = None
        recipient = helo = ""
    else:
        end = tail
        sender, recipient, helo = _TAIL.match(msg, tail + 2).groups()
    code, dsn, text = _REPLY.match(msg, start, end).groups()
    return Reject(_PENDING, "", "", None, qid, action, stage, name or "", ip or "", code or "",
                  dsn or "", text.rstrip(), sender, recipient or "", helo or "")


def _check_reject(msg: str, p: int, action: str, qid: str | None) -> Record | str:
    """cleanup's `header|body CONTENT from name[ip]; from=<a> to=<b> ...[: DSN TEXT]`."""
    m = _CHECK_HEAD.match(msg, p)
    if m is None:
        return UNPARSED
    stage, what, client = m.groups()
    name, ip = _split_client(client)
    tail = _TAIL.match(msg, m.end())
    sender, recipient, helo = tail.groups()
    code = dsn = ""
    text = what
    after = tail.end()
    if msg.startswith(": ", after):
        code, dsn, reason = _REPLY.match(msg, after + 2).groups()
        if reason:
            text = f"{what}: {reason.rstrip()}"
    return Reject(_PENDING, "", "", None, qid, action, stage, name, ip, code or "", dsn or "",
                  text, sender, recipient or "", helo or "")
