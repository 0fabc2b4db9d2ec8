"""The Postfix log line parser: one syslog line in, one typed record (or None) out.

A line is `<timestamp> <host> <syslog_name>/<...>/<daemon>[<pid>]: <message>`
(docs/postfix-lines.md). Work per line is kept small because a month of a campus relay
is millions of lines, most of them useless here:

1. decode (invalid UTF-8 is replaced, not refused), refuse over-long lines;
2. split at the first ": " (str.partition): before it the timestamp, whose form is told
   by fixed positions, and `host program[pid]`, split once per distinct value and
   remembered (a relay has few hosts and programs, a process logs many lines);
3. dispatch on the daemon (the last path element of the program) through a dict, so
   dnsblog, anvil, tlsproxy, master... and non-Postfix programs (amavis, dovecot,
   opendkim...) are dropped there;
4. each daemon's handler tests a substring (`": " in msg`, `"to=" in msg`) to drop its
   noise (connect, disconnect, TLS, postscreen's CONNECT/PASS...), then runs one
   module-level regex anchored at the message start that names the kind of the line
   and takes its fields;
5. only a line that yields a record has its timestamp parsed (which also moves the
   classic-timestamp year inference) and is checked for NUL characters.

Measured with callgrind on CPython 3.11: a regex call costs ~2,000 machine instructions
before it matches anything, str.find/startswith with positions ~1,000 (their arguments
are parsed the slow way), `in` ~300; a line costs ~8,000 when skipped and ~17,000-34,000
when it gives a record (a Delivery is the dearest).

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
NUL = "nul"  # a NUL inside a line that would give a record (leading NULs are dropped)
TOO_LONG = "too_long"  # over MAX_LINE bytes (characters for str input)
NOT_SYSLOG = "not_syslog"  # no recognisable `timestamp host program: ` header
NOT_POSTFIX = "not_postfix"  # program without `[pid]` or without a `/` (dovecot, amavis...)
UNINTERESTING = "uninteresting"  # a Postfix line of no use here (postscreen, connect, TLS...)
UNPARSED = "unparsed_postfix"  # looked like a kind we parse, but its grammar did not match
BAD_TIMESTAMP = "bad_timestamp"  # a useful line whose timestamp is not a valid time
PARSER_ERROR = "parser_error"  # a bug in this module; the line is skipped, never fatal
SKIP_REASONS = (
    EMPTY,
    NUL,
    TOO_LONG,
    NOT_SYSLOG,
    NOT_POSTFIX,
    UNINTERESTING,
    UNPARSED,
    BAD_TIMESTAMP,
    PARSER_ERROR,
)

MAX_LINE = 64 * 1024

# Records are built before their timestamp is parsed; parse() fills time, host, pid in.
_PENDING = datetime(1970, 1, 1, tzinfo=UTC)

# How many `host program[pid]` values are remembered, and the longest one.
_HEADS_KEPT = 4096
_HEAD_MAX = 320
_HOST_MAX = 255

# Policy actions logged with a `; from=<...> to=<...>` tail: smtpd access/milter
# decisions, postscreen, the before-queue proxy, cleanup header/body checks.
REJECT_ACTIONS = frozenset(
    {
        "reject",
        "reject_warning",
        "discard",
        "hold",
        "filter",
        "redirect",
        "milter-reject",
        "milter-discard",
        "milter-hold",
        "proxy-reject",
    }
)
_ACTIONS = "|".join(sorted((re.escape(a) for a in REJECT_ACTIONS), key=len, reverse=True))

# A queue ID is the token before the message's first ": " (docs/postfix-lines.md): short
# (hex), long (base 52) or munged (FG's XXXX suffix), so any 5-32 ASCII alphanumerics;
# the grammar of the rest of the line is what makes it one.
_QID = r"[0-9A-Za-z]{5,32}"

# Delivery status lines, in two steps: the fields of today's Postfix in their order
# (fast), then any key=value fields between the fixed ones, unbracketed addresses and a
# line cut short.
_RELAY = (
    r"relay=(?P<relay>(?P<relay_host>[^,\[]*)\[(?P<relay_ip>[^\],]*)\]"
    r"(?::(?P<relay_port>\d{1,5}))?|[^,]*), "
)
_DELIVERY = re.compile(
    rf"(?P<qid>{_QID}): to=<(?P<to>[^>]*)>, (?:orig_to=<(?P<orig>[^>]*)>, )?"
    + _RELAY
    + r"(?:conn_use=\d+, )?delay=(?P<delay>[^,]*), delays=[^,]*, (?:tls=[^,]*, )?"
    r"dsn=(?P<dsn>[^,]*), status=(?P<status>[^\s(]*) \((?P<response>.*)\)"
)
_DELIVERY_ANY = re.compile(
    rf"(?P<qid>{_QID}): to=(?:<(?P<to>[^>]*)>|(?P<to_bare>[^,]*)), "
    r"(?:orig_to=(?:<(?P<orig>[^>]*)>|(?P<orig_bare>[^,]*)), )?"
    + _RELAY
    + r"(?:[a-z_]+=[^,]*, )*?delay=(?P<delay>[^,]*), "
    r"(?:[a-z_]+=[^,]*, )*?dsn=(?P<dsn>[^,]*), "
    r"(?:[a-z_]+=[^,]*, )*?status=(?P<status>[^\s(]*)"
    r"(?: \((?P<response>.*)\)| \(?(?P<cut>.*))?"  # up to the LAST ")"; a line cut short
)
_QUEUED_AS = re.compile(r"queued as ([0-9A-Za-z]+)")
_FORWARDED_AS = re.compile(r"forwarded as ([0-9A-Za-z]+)")

# smtpd: the useful lines and their fields in one match (connect, disconnect, TLS, lost
# connection... fail on their first word). The empty groups name the kind (lastgroup).
_SMTPD = re.compile(
    rf"(?P<qid>{_QID}|NOQUEUE): (?:"
    r"client=(?P<name>[^\s\[]*)\[(?P<ip>[^\]]*)\](?::\d{1,5})?"
    r"(?:, sasl_method=(?P<method>[^,]*))?(?:, sasl_username=(?P<user>[^,]*))?(?P<client>)"
    rf"|(?P<action>{_ACTIONS}): )"
    r"|warning: (?P<f_name>[^\s\[]*)\[(?P<f_ip>[^\]]*)\](?::\d{1,5})?: "
    r"SASL (?P<f_method>[^\s:]+) authentication failed(?::? ?(?P<f_reason>.*?))?"
    r"(?:, sasl_username=(?P<f_user>.*))?(?P<sasl>)$"
)
_QMGR = re.compile(
    rf"(?P<qid>{_QID}): (?:"
    r"from=<(?P<sender>.*?)>, (?:size=(?P<size>\d{1,18}), nrcpt=(?P<nrcpt>\d{1,9})"
    r"|status=(?P<expired>(?:force-)?expired)\b)"
    r"|(?P<removed>removed)\s*$"
    r"|(?P<to>to=)"
    r"|(?P<other_from>from=<))"
)
_CLEANUP = re.compile(  # a message-id without its angle brackets (and what trails them)
    rf"(?P<qid>{_QID}): (?:message-id=\s*<?(?P<message_id>[^>]*)|(?P<action>{_ACTIONS}): )"
)
_PICKUP = re.compile(rf"(?P<qid>{_QID}): uid=\d{{1,10}} from=<(?P<sender>.*)>")
_BOUNCE = re.compile(
    rf"(?P<qid>{_QID}): (?P<who>sender|postmaster) (?P<kind>[a-z][a-z -]*?) notification: "
    r"(?P<ndn>[0-9A-Za-z]+)"
)
_POSTSCREEN = re.compile(rf"NOQUEUE: (?P<action>{_ACTIONS}): ")
_POSTSUPER = re.compile(rf"(?P<qid>{_QID}): removed\s*$")

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

    def __init__(
        self,
        tz: tzinfo,
        reference: datetime | None = None,
        year: int | None = None,
        last_month: int | None = None,
    ):
        self.tz = tz
        self.clock = SyslogClock(tz, reference, year, last_month)
        self._skips = dict.fromkeys(SKIP_REASONS, 0)  # behind stats: a dict counts faster
        self.replaced_utf8 = 0
        self._heads: dict[str, tuple[str, str, int | None, Handler] | str] = {}
        self._bases: dict[str, tuple[str, str, int | None, Handler] | str] = {}  # no [pid]

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
            if len(text) < 24:  # shorter than any useful line
                return self._parse_odd(text)

            # The timestamp's form by fixed positions; `host program[pid]` is what comes
            # after it up to the first ": ".
            prefix, colon, msg = text.partition(": ")
            first = text[0]
            if text[15] == " " and "A" <= first <= "Z":  # classic "Mmm dd hh:mm:ss"
                form = 0
                key = prefix[16:]
            elif "0" <= first <= "9":
                if text[10] == "T" and text[4] == "-":  # RFC 3339
                    form = 1
                    stamp, _, key = prefix.partition(" ")
                elif text[4] == " ":  # "YYYY Mmm dd hh:mm:ss[.fff]"
                    form = 2
                    stamp = prefix[: prefix.find(" ", 20)]
                    key = prefix[len(stamp) + 1 :]
                else:
                    key = ""
            elif text[14] == " " and text[5] == " " and "A" <= first <= "Z":
                form = 3  # a classic day not space-padded: "Mmm d hh:mm:ss"
                key = prefix[15:]
            else:
                return self._parse_odd(text)

            # "host program[pid]" -> (host, daemon, pid, handler), or why to skip the line
            split = self._heads.get(key)
            if split is None:
                if not colon or len(key) > _HEAD_MAX:
                    skips[NOT_SYSLOG] += 1
                    return None
                split = self._split_head(key)
            if split.__class__ is str:
                skips[split] += 1
                return None
            host, daemon, pid, handler = split

            rec = handler(msg)
            if rec.__class__ is str:
                skips[rec] += 1
                return None
            if "\x00" in text:  # only record lines pay for this check
                skips[NUL] += 1
                return None
            if form == 0:
                time = self.clock.classic(text[:15])
            elif form == 1 or form == 2:
                time = self.clock.rfc3339(stamp) if form == 1 else self.clock.year_prefixed(stamp)
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
        """A short line, or one that starts with neither a letter nor a digit."""
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

    def _split_head(self, key: str) -> tuple[str, str, int | None, Handler] | str:
        """Split and remember `host syslog_name/.../daemon[pid]`, or the reason to skip.

        What comes before `[pid]` is split once (a relay has few hosts and programs; a
        new process, a new pid, costs a lookup and an int()): the split of the key with
        its pid set to 0.
        """
        heads, bases = self._heads, self._bases
        if len(heads) >= _HEADS_KEPT:
            heads.clear()
        bracket = key.rfind("[")
        pid = key[bracket + 1 : -1]
        if bracket <= 0 or not key.endswith("]") or " " in pid:
            split = _split_key(key)
        else:
            split = bases.get(key[:bracket])
            if split is None:
                if len(bases) >= _HEADS_KEPT:
                    bases.clear()
                split = bases[key[:bracket]] = _split_key(key[:bracket] + "[0]")
            if split.__class__ is not str:
                host, daemon, _, handler = split
                split = host, daemon, _pid(pid), handler
        heads[key] = split
        return split

    def parse_message(
        self, program: str, message: str, *, time: datetime, host: str = "", pid: int | None = None
    ) -> Record | None:
        """The record of a message whose syslog header came separately (journald's
        SYSLOG_IDENTIFIER, _PID, MESSAGE; or the message-only samples of the corpus).

        program is `postfix/smtp` or just the daemon name `smtp`. Never raises.
        """
        try:
            text = message.rstrip("\r\n")
            reason = _refuse(text)
            if reason:
                self._skips[reason] += 1
                return None
            daemon = program[program.rfind("/") + 1 :]
            handler = _HANDLERS.get(daemon)
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


def _split_key(key: str) -> tuple[str, str, int | None, Handler] | str:
    """`host syslog_name/.../daemon[pid]` -> (host, daemon, pid, handler), or the reason
    to skip its lines."""
    space = key.find(" ")
    bracket = key.rfind("[")
    slash = key.rfind("/", 0, bracket)
    if space <= 0 or space > _HOST_MAX or key.find(" ", space + 1) >= 0:
        return NOT_SYSLOG  # a host name is at most 253 characters
    if bracket < space or slash < space or not key.endswith("]"):
        return NOT_POSTFIX  # dovecot: ..., amavis[123]: ...
    daemon = key[slash + 1 : bracket]
    handler = _HANDLERS.get(daemon)
    if handler is None:
        return UNINTERESTING  # anvil, dnsblog, tlsproxy, master, scache...
    return key[:space], daemon, _pid(key[bracket + 1 : -1]), handler


def _pid(text: str) -> int | None:
    """The pid between a head's brackets, or None when it is none (not a number)."""
    return int(text) if text.isdecimal() and len(text) < 16 else None


def line_host(line: bytes) -> bytes | None:
    """The host field of a syslog line, from its raw bytes: what LineParser.parse(line)
    gives as the record's host (UTF-8 encoded) whenever it gives a record.

    For splitting a central log by relay without parsing it: a few slices, no decoding.
    Every timestamp form parse() accepts (classic, unpadded day, RFC 3339, year-prefixed)
    and leading NULs are handled as parse() handles them. None when the line has no host
    field: empty, not a syslog line, no space after the host, a host over 255 bytes.
    Never raises.
    """
    try:
        if line[:1] == b"\x00":
            line = line.lstrip(b"\x00")  # the hole a crash leaves (parse drops it too)
        first = line[:1]
        if b"A" <= first <= b"Z":
            if line[15:16] == b" ":  # "Mmm dd hh:mm:ss host"
                start = 16
            elif line[14:15] == b" " and line[5:6] == b" ":  # "Mmm d hh:mm:ss host"
                start = 15
            else:
                return None
        elif b"0" <= first <= b"9":
            if line[10:11] == b"T" and line[4:5] == b"-":  # RFC 3339
                start = line.find(b" ") + 1
            elif line[4:5] == b" ":  # "YYYY Mmm dd hh:mm:ss[.fff] host"
                start = line.find(b" ", 20) + 1
            else:
                return None
            if not start:
                return None
        else:
            return None
        end = line.find(b" ", start)
        if end <= start or end - start > _HOST_MAX or len(line) < 24:
            return None
        if not line.isascii() and not line[:end].isascii():
            return _line_host_text(line)  # characters and bytes may not line up
        if line[end - 1] == 58:  # "host: message": the head ends before any program
            return None
        return line[start:end]
    except Exception:  # not bytes at all, say
        return None


def _line_host_text(line: bytes) -> bytes | None:
    """line_host for a line with non-ASCII bytes before its host: parse's own steps."""
    text = line.decode("utf-8", "replace").rstrip("\r\n")
    if len(text) < 24:
        return None
    prefix = text.partition(": ")[0]
    first = text[0]
    if text[15] == " " and "A" <= first <= "Z":
        key = prefix[16:]
    elif "0" <= first <= "9":
        if text[10] == "T" and text[4] == "-":
            key = prefix.partition(" ")[2]
        elif text[4] == " " and prefix.find(" ", 20) > 0:
            key = prefix[prefix.find(" ", 20) + 1 :]
        else:
            return None
    elif text[14] == " " and text[5] == " " and "A" <= first <= "Z":
        key = prefix[15:]
    else:
        return None
    space = key.find(" ")
    if space <= 0 or space > _HOST_MAX:
        return None
    return key[:space].encode()


def _refuse(text: str) -> str:
    if len(text) > MAX_LINE:
        return TOO_LONG
    if not text or text.isspace():
        return EMPTY
    if "\x00" in text:
        return NUL
    return ""


# -- one handler per daemon: message -> record, or the reason to skip -----------------
def _smtpd(msg: str) -> Record | str:
    colon = msg.find(": ")
    if colon < 0:
        return UNINTERESTING  # connect, disconnect, lost connection, timeout...
    # _SMTPD needs a queue ID, NOQUEUE or `warning` before the first ": ", none of which
    # holds a space: TLS, SSL_accept, improper pipelining... end here, without the regex.
    m = None if " " in msg[:colon] else _SMTPD.match(msg)
    if m is None:
        if ": client=" in msg or "authentication failed" in msg:
            return UNPARSED
        return UNINTERESTING  # TLS, other warnings, proxy-accept...
    kind = m.lastgroup
    (qid, name, ip, method, user, _, action, f_name, f_ip, f_method, f_reason, f_user, _) = (
        m.groups()
    )
    if kind == "client":
        if qid == "NOQUEUE":
            return UNINTERESTING  # `NOQUEUE: client=`: a before-queue proxy's session
        return ClientLine(_PENDING, "", "", None, qid, name, ip, method or "", user or "")
    if kind == "sasl":
        return SaslFailure(
            _PENDING, "", "", None, None, f_name, f_ip, f_method, f_reason or "", f_user or ""
        )
    return _reject(msg, m.end(), action, None if qid == "NOQUEUE" else qid)


def _qmgr(msg: str) -> Record | str:
    m = _QMGR.match(msg)
    if m is None:
        return UNINTERESTING  # skipped, still being delivered; warning: ...
    kind = m.lastgroup
    qid, sender, size, nrcpt, expired, _, _, _ = m.groups()
    if kind == "nrcpt":
        return QmgrFrom(_PENDING, "", "", None, qid, sender, int(size), int(nrcpt))
    if kind == "removed":
        return QmgrRemoved(_PENDING, "", "", None, qid)
    if kind == "expired":
        return QmgrExpired(_PENDING, "", "", None, qid, sender, expired == "force-expired")
    if kind == "to":
        return _delivery(msg)  # qmgr defers recipients of a dead destination itself
    return UNPARSED  # from=<...> in no known form


def _delivery(msg: str) -> Record | str:
    if "to=" not in msg:
        return UNINTERESTING  # connect to, TLS, host ... said, lost connection...
    m = _DELIVERY.match(msg)
    if m is not None:
        (qid, to, orig, relay, relay_host, relay_ip, relay_port, delay, dsn, status, response) = (
            m.groups()
        )
        if orig is None:
            orig = ""
    else:
        m = _DELIVERY_ANY.match(msg)
        if m is None:
            return UNPARSED if ": to=" in msg or msg.startswith("to=") else UNINTERESTING
        (
            qid,
            to,
            to_bare,
            orig,
            orig_bare,
            relay,
            relay_host,
            relay_ip,
            relay_port,
            delay,
            dsn,
            status,
            response,
            cut,
        ) = m.groups()
        if to is None:
            to = to_bare
        if orig is None:
            orig = orig_bare or ""
        if response is None:
            response = cut or ""
    queued_as = forwarded_as = None
    if " as " in response:  # one test for the many replies that name no new queue ID
        q = _QUEUED_AS.search(response)
        if q is not None:
            queued_as = q[1]
        elif status == "sent":
            q = _FORWARDED_AS.search(response)
            if q is not None:
                forwarded_as = q[1]
    if relay_ip is None or "/" in relay_ip:  # none, local, host[/path/of/socket]
        relay_host = relay
        relay_ip = ""
        relay_port = None
    try:
        seconds: float | None = float(delay)
        if not 0 <= seconds < 1e12:  # also nan and inf
            seconds = None
    except ValueError:
        seconds = None
    return Delivery(
        _PENDING,
        "",
        "",
        None,
        qid,
        to,
        orig,
        relay,
        relay_host,
        relay_ip,
        int(relay_port) if relay_port else None,
        seconds,
        dsn,
        status,
        response,
        queued_as,
        forwarded_as,
    )


def _cleanup(msg: str) -> Record | str:
    m = _CLEANUP.match(msg)
    if m is None:
        return UNINTERESTING  # header warning/info/replace/prepend, resent-message-id...
    qid, message_id, action = m.groups()
    if action is None:
        return MessageIdLine(_PENDING, "", "", None, qid, message_id)
    return _reject(msg, m.end(), action, qid)


def _pickup(msg: str) -> Record | str:
    m = _PICKUP.match(msg)
    if m is None:
        return UNPARSED if ": uid=" in msg else UNINTERESTING
    return PickupLine(_PENDING, "", "", None, m["qid"], m["sender"])


def _bounce(msg: str) -> Record | str:
    m = _BOUNCE.match(msg)
    if m is None:
        return UNPARSED if " notification" in msg else UNINTERESTING
    qid, who, kind, ndn = m.groups()
    if who == "postmaster":
        kind = "postmaster " + kind
    return BounceNotice(_PENDING, "", "", None, qid, kind, ndn)


def _postscreen(msg: str) -> Record | str:
    m = _POSTSCREEN.match(msg) if msg[:1] == "N" else None
    if m is None:
        return UNINTERESTING  # CONNECT, PASS, DNSBL, HANGUP, PREGREET...
    return _reject(msg, m.end(), m["action"], None)


def _postsuper(msg: str) -> Record | str:
    m = _POSTSUPER.match(msg)
    if m is None:
        return UNINTERESTING  # requeued, placed on hold, Deleted: N messages...
    return QmgrRemoved(_PENDING, "", "", None, m["qid"])


# -- grammars shared by several daemons ------------------------------------------------
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
    return Reject(
        _PENDING,
        "",
        "",
        None,
        qid,
        action,
        stage,
        name or "",
        ip or "",
        code or "",
        dsn or "",
        text.rstrip(),
        sender,
        recipient or "",
        helo or "",
    )


def _check_reject(msg: str, p: int, action: str, qid: str | None) -> Record | str:
    """cleanup's `header|body CONTENT from name[ip]; from=<a> to=<b> ...[: DSN TEXT]`."""
    m = _CHECK_HEAD.match(msg, p)
    if m is None:
        return UNPARSED
    stage, what, client = m.groups()
    bracket = client.rfind("[")
    if bracket >= 0 and client.endswith("]"):
        name, ip = client[:bracket], client[bracket + 1 : -1]
    else:
        name, ip = client, ""  # "local": submitted with the sendmail command
    tail = _TAIL.match(msg, m.end())
    sender, recipient, helo = tail.groups()
    code = dsn = ""
    text = what
    after = tail.end()
    if msg.startswith(": ", after):
        code, dsn, reason = _REPLY.match(msg, after + 2).groups()
        if reason:
            text = f"{what}: {reason.rstrip()}"
    return Reject(
        _PENDING,
        "",
        "",
        None,
        qid,
        action,
        stage,
        name,
        ip,
        code or "",
        dsn or "",
        text,
        sender,
        recipient or "",
        helo or "",
    )


# The daemons whose lines can give a record; every other daemon's lines are skipped
# without looking at them.
_HANDLERS: dict[str, Handler] = {
    "smtpd": _smtpd,
    "qmgr": _qmgr,
    "oqmgr": _qmgr,
    "cleanup": _cleanup,
    "pickup": _pickup,
    "bounce": _bounce,
    "postscreen": _postscreen,
    "postsuper": _postsuper,
    "smtp": _delivery,
    "lmtp": _delivery,
    "local": _delivery,
    "virtual": _delivery,
    "pipe": _delivery,
    "error": _delivery,
    "retry": _delivery,
    "discard": _delivery,
}
