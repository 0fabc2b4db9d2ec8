"""The Postfix line parser, one line kind at a time, on real lines (docs/postfix-lines.md).

No database: the parser is plain Python.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zoneinfo
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import time_machine

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

TZ = zoneinfo.ZoneInfo("Asia/Taipei")
# Files are read a little after they were written: anchor classic timestamps in 2026.
REFERENCE = datetime(2026, 11, 20, 10, 0, tzinfo=TZ)
REPO = Path(__file__).resolve().parents[2]


def new_parser(**kwargs) -> LineParser:
    kwargs.setdefault("reference", REFERENCE)
    return LineParser(TZ, **kwargs)


def parse(line: str | bytes, kind: type[Record]) -> Record:
    parser = new_parser()
    rec = parser.parse(line)
    assert isinstance(rec, kind), (rec, dict(parser.stats))
    return rec


def skip_reason(line: str | bytes, parser: LineParser | None = None) -> str:
    parser = parser or new_parser()
    before = parser.stats.copy()
    assert parser.parse(line) is None
    (reason,) = (parser.stats - before).keys()
    return reason


def at(*args: int, tz=TZ) -> datetime:
    return datetime(*args, tzinfo=tz)


# -- the package stays plain Python ----------------------------------------------------
def test_the_postfix_package_imports_without_django() -> None:
    # smtplog/__init__.py starts the Celery app (which loads Django); the parser package
    # itself must not need it, so load it under a bare `smtplog` package with Django
    # made unimportable.
    code = textwrap.dedent(f"""
        import importlib.abc, sys, types

        class NoDjango(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("django", "celery"):
                    raise ImportError(f"{{name}} is not allowed here")
                return None

        sys.meta_path.insert(0, NoDjango())
        package = types.ModuleType("smtplog")
        package.__path__ = [{str(REPO / "smtplog")!r}]
        sys.modules["smtplog"] = package
        import smtplog.postfix, smtplog.postfix.parser, smtplog.postfix.records
        import smtplog.postfix.timestamps
        assert not any(m.split(".")[0] == "django" for m in sys.modules), "django loaded"
        parser = smtplog.postfix.LineParser(__import__("datetime").timezone.utc)
        assert parser.parse("Jun  3 10:40:59 mail postfix/qmgr[1005]: 776E41855DB2: removed")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# -- smtpd client= ---------------------------------------------------------------------
def test_a_sasl_client_line_gives_client_address_and_login() -> None:
    rec = parse(
        "Jun  3 10:40:57 mail postfix/submission/smtpd[9708]: 4AA091855DA0: "
        "client=some.domain.name[1.2.3.4], sasl_method=PLAIN, sasl_username=user@sender.com",
        ClientLine,
    )
    assert rec == ClientLine(
        at(2026, 6, 3, 10, 40, 57),
        "mail",
        "smtpd",
        9708,
        "4AA091855DA0",
        "some.domain.name",
        "1.2.3.4",
        "PLAIN",
        "user@sender.com",
    )


def test_an_ipv6_client_with_a_long_queue_id_and_rfc3339_time_is_parsed() -> None:
    rec = parse(
        "2023-03-14T00:31:06.621091+01:00 helga postfix/submission/smtpd[303987]: "
        "4PbCZy4PWKz3tBr: client=unknown[2a02:8109:b240:41c8:9264:99a9:1b0d:15c8], "
        "sasl_method=PLAIN, sasl_username=person@example.net",
        ClientLine,
    )
    assert rec == ClientLine(
        datetime(2023, 3, 13, 23, 31, 6, 621091, tzinfo=UTC),
        "helga",
        "smtpd",
        303987,
        "4PbCZy4PWKz3tBr",
        "unknown",
        "2a02:8109:b240:41c8:9264:99a9:1b0d:15c8",
        "PLAIN",
        "person@example.net",
    )


def test_an_unauthenticated_client_has_empty_sasl_fields() -> None:
    rec = parse(
        "Jan 25 18:50:11 mx postfix/smtpd[5178]: 0DAFB2E2D27: client=localhost[::1]", ClientLine
    )
    assert (rec.queue_id, rec.client_name, rec.client_ip, rec.sasl_method, rec.sasl_username) == (
        "0DAFB2E2D27",
        "localhost",
        "::1",
        "",
        "",
    )


def test_a_client_with_port_and_sasl_sender_keeps_address_and_login() -> None:
    # The form Postfix 3 logs with client port logging on.
    rec = parse(
        "Jan  5 10:00:00 relay1 postfix/smtpd[4410]: 5F2A1C0042: "
        "client=pc12.cs.example.edu[192.0.2.7]:51234, sasl_method=LOGIN, sasl_username=alice, "
        "sasl_sender=alice@cs.example.edu",
        ClientLine,
    )
    assert (rec.client_name, rec.client_ip, rec.sasl_method, rec.sasl_username) == (
        "pc12.cs.example.edu",
        "192.0.2.7",
        "LOGIN",
        "alice",
    )


def test_a_before_queue_proxy_client_without_queue_id_is_skipped() -> None:
    line = "Jan  5 10:00:00 relay1 postfix/smtpd[4410]: NOQUEUE: client=unknown[10.100.0.3]"
    assert skip_reason(line) == "uninteresting"


# -- pickup, cleanup, qmgr -------------------------------------------------------------
def test_a_pickup_line_gives_the_local_sender() -> None:
    rec = parse(
        "Feb  1 13:17:02 mail postfix/pickup[28541]: 08ACF1541B01: uid=42 from=<someone>",
        PickupLine,
    )
    assert rec == PickupLine(
        at(2026, 2, 1, 13, 17, 2), "mail", "pickup", 28541, "08ACF1541B01", "someone"
    )


def test_a_message_id_loses_its_angle_brackets() -> None:
    rec = parse(
        "Jun  3 10:40:57 mail postfix/sender-cleanup/cleanup[9709]: 4AA091855DA0: "
        "message-id=<ca10035e-2951-bfd5-ec7e-1a5773fce1cd@mail.sender.com>",
        MessageIdLine,
    )
    assert rec == MessageIdLine(
        at(2026, 6, 3, 10, 40, 57),
        "mail",
        "cleanup",
        9709,
        "4AA091855DA0",
        "ca10035e-2951-bfd5-ec7e-1a5773fce1cd@mail.sender.com",
    )


@pytest.mark.parametrize(
    ("message", "message_id"),
    [
        ("message-id=", ""),
        ("message-id=<>", ""),
        (
            "message-id=<h-22b35ef986ae4024dffa0@h-70550910e99892.com>+29A6080B6290BF43",
            "h-22b35ef986ae4024dffa0@h-70550910e99892.com",
        ),
        ("message-id=2021-01-25 10:00:05.006274", "2021-01-25 10:00:05.006274"),
    ],
)
def test_odd_message_ids_are_survived(message: str, message_id: str) -> None:
    rec = parse(f"Jan 29 17:27:21 mx postfix/cleanup[22582]: A55EA2E01B5: {message}", MessageIdLine)
    assert rec.message_id == message_id


def test_a_queue_active_line_gives_sender_size_and_recipient_count() -> None:
    rec = parse(
        "Sep 25 18:26:34 smtpnode16 postfix-239.58.50.50/qmgr[31214]: 23EBE3D5C0: "
        "from=<h-498b874f2bf0cf639807ad80e1@h-5e67b9b4406.com>, size=312343, nrcpt=1 "
        "(queue active)",
        QmgrFrom,
    )
    assert rec == QmgrFrom(
        at(2026, 9, 25, 18, 26, 34),
        "smtpnode16",
        "qmgr",
        31214,
        "23EBE3D5C0",
        "h-498b874f2bf0cf639807ad80e1@h-5e67b9b4406.com",
        312343,
        1,
    )


def test_the_null_sender_is_an_empty_string() -> None:
    rec = parse(
        "Jun  3 10:40:59 mail postfix/qmgr[1005]: A48191855DA0: from=<>, size=3147, "
        "nrcpt=1 (queue active)",
        QmgrFrom,
    )
    assert (rec.sender, rec.size, rec.nrcpt) == ("", 3147, 1)


def test_removed_ends_a_queue_id() -> None:
    rec = parse("Jun  3 10:40:59 mail postfix/qmgr[1005]: 776E41855DB2: removed", QmgrRemoved)
    assert rec == QmgrRemoved(at(2026, 6, 3, 10, 40, 59), "mail", "qmgr", 1005, "776E41855DB2")


def test_postsuper_deleting_a_message_also_ends_its_queue_id() -> None:
    rec = parse("Jun  3 11:00:00 mail postfix/postsuper[2077]: D4F2023DB: removed", QmgrRemoved)
    assert (rec.daemon, rec.queue_id) == ("postsuper", "D4F2023DB")


def test_an_expired_message_names_its_sender() -> None:
    rec = parse(
        "Sep 30 20:46:08 smtpnode16 postfix-239.58.50.50/qmgr[31214]: 23EBE3D5C0: "
        "from=<h-498b874f2bf0cf639807ad80e1@h-5e67b9b4406.com>, status=expired, "
        "returned to sender",
        QmgrExpired,
    )
    assert rec == QmgrExpired(
        at(2026, 9, 30, 20, 46, 8),
        "smtpnode16",
        "qmgr",
        31214,
        "23EBE3D5C0",
        "h-498b874f2bf0cf639807ad80e1@h-5e67b9b4406.com",
        False,
    )


def test_a_force_expired_message_is_marked_forced() -> None:
    rec = parse(
        "Apr 10 14:50:16 mail postfix/qmgr[3663]: BACE842E73: from=<noreply@domain.com>, "
        "status=force-expired, returned to sender",
        QmgrExpired,
    )
    assert (rec.queue_id, rec.sender, rec.forced) == ("BACE842E73", "noreply@domain.com", True)


# -- delivery status lines -------------------------------------------------------------
def test_a_bounce_keeps_the_whole_response_with_its_nested_parentheses() -> None:
    rec = parse(
        "Jun  3 10:40:59 mail postfix/smtp[9890]: 776E41855DB2: to=<invalid.email@example.com>, "
        "relay=mx.example.com[11.22.33.44]:25, delay=1.9, delays=0/0/1.5/0.37, dsn=5.1.1, "
        "status=bounced (host mx.example.com[11.22.33.44] said: 550 5.1.1 "
        "<invalid.email@example.com> User unknown (in reply to RCPT TO command))",
        Delivery,
    )
    assert rec == Delivery(
        at(2026, 6, 3, 10, 40, 59),
        "mail",
        "smtp",
        9890,
        "776E41855DB2",
        "invalid.email@example.com",
        "",
        "mx.example.com[11.22.33.44]:25",
        "mx.example.com",
        "11.22.33.44",
        25,
        1.9,
        "5.1.1",
        "bounced",
        "host mx.example.com[11.22.33.44] said: 550 5.1.1 <invalid.email@example.com> User "
        "unknown (in reply to RCPT TO command)",
        None,
        None,
    )


def test_a_content_filter_hop_names_the_queue_id_it_was_queued_as() -> None:
    rec = parse(
        "2023-03-14T00:08:35.948047+01:00 helga postfix/amavis/smtp[302609]: 4PbC4x469Jz3tBr: "
        "to=<person@example.net>, orig_to=<person@example.net>, relay=127.0.0.1[127.0.0.1]:10024, "
        "delay=2.4, delays=0.29/0.02/0.01/2.1, dsn=2.0.0, status=sent (250 2.0.0 from "
        "MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 4PbC4z6W5Qz3tG3)",
        Delivery,
    )
    assert rec == Delivery(
        datetime(2023, 3, 13, 23, 8, 35, 948047, tzinfo=UTC),
        "helga",
        "smtp",
        302609,
        "4PbC4x469Jz3tBr",
        "person@example.net",
        "person@example.net",
        "127.0.0.1[127.0.0.1]:10024",
        "127.0.0.1",
        "127.0.0.1",
        10024,
        2.4,
        "2.0.0",
        "sent",
        "250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 4PbC4z6W5Qz3tG3",
        "4PbC4z6W5Qz3tG3",
        None,
    )


def test_a_deferral_from_postfix_error_in_the_year_prefixed_form_is_a_delivery() -> None:
    rec = parse(
        "2013 Jun 10 06:38:17.123 gds39d postfix/smtp[8150]: 953B93FC06EXXXX: "
        "to=<v4i3kv@v4i3k.eo>, relay=none, delay=420316, delays=420315/0.01/0.01/0, dsn=4.4.1, "
        "status=deferred (connect to mx.valek.cz[82.113.55.126]:25: Connection refused)",
        Delivery,
    )
    assert rec == Delivery(
        at(2013, 6, 10, 6, 38, 17) + timedelta(microseconds=123000),
        "gds39d",
        "smtp",
        8150,
        "953B93FC06EXXXX",
        "v4i3kv@v4i3k.eo",
        "",
        "none",
        "none",
        "",
        None,
        420316.0,
        "4.4.1",
        "deferred",
        "connect to mx.valek.cz[82.113.55.126]:25: Connection refused",
        None,
        None,
    )


def test_a_local_alias_expansion_names_the_queue_id_it_was_forwarded_as() -> None:
    rec = parse(
        "2023-03-13T00:40:11.021405+01:00 helga postfix/local[326895]: 4PbMVH1gW1z3tBr: "
        "to=<root@mail.example.de>, relay=local, delay=0.06, delays=0.02/0.01/0/0.03, "
        "dsn=2.0.0, status=sent (forwarded as 4PbMVH1yTpz3tG3)",
        Delivery,
    )
    assert (rec.daemon, rec.relay, rec.status, rec.queued_as, rec.forwarded_as) == (
        "local",
        "local",
        "sent",
        None,
        "4PbMVH1yTpz3tG3",
    )


def test_only_a_sent_line_can_be_forwarded() -> None:
    rec = parse(
        "Jun  3 10:40:59 mail postfix/local[2]: AAAA1: to=<root@mail.example.de>, relay=local, "
        "delay=0.06, delays=0.02/0.01/0/0.03, dsn=4.3.0, status=deferred (forwarded as "
        "BBBB2 failed: temporary error)",
        Delivery,
    )
    assert rec.forwarded_as is None


def test_an_lmtp_relay_over_a_unix_socket_is_not_split() -> None:
    rec = parse(
        "Jun  3 10:40:59 mail postfix/lmtp[9717]: A48191855DA0: to=<user@sender.com>, "
        "relay=mail.sender.com[/var/run/dovecot/lmtp], delay=0.03, delays=0.01/0/0.02/0.01, "
        "dsn=2.0.0, status=sent (250 2.0.0 <user@sender.com> IkiQKTt+117kJgAAWP5Hkg Saved)",
        Delivery,
    )
    assert (rec.daemon, rec.relay, rec.relay_host, rec.relay_ip, rec.relay_port) == (
        "lmtp",
        "mail.sender.com[/var/run/dovecot/lmtp]",
        "mail.sender.com[/var/run/dovecot/lmtp]",
        "",
        None,
    )
    assert (rec.status, rec.response, rec.queued_as) == (
        "sent",
        "250 2.0.0 <user@sender.com> IkiQKTt+117kJgAAWP5Hkg Saved",
        None,
    )


def test_a_local_delivery_keeps_orig_to_and_a_quoted_command() -> None:
    rec = parse(
        "Jun 20 05:02:07 ns4 postfix/local[16460]: 95154657C: to=<h-493fac8f3@h-ea3f4afa.com>, "
        "orig_to=<h-195704c@h-20b651e8120a33ec11.com>, relay=local, delay=0.1, "
        "delays=0.09/0/0/0.01, dsn=2.0.0, status=sent (delivered to command: procmail -a "
        '"$EXTENSION" DEFAULT=$HOME/Maildir/)',
        Delivery,
    )
    assert (
        rec.queue_id,
        rec.recipient,
        rec.orig_to,
        rec.relay,
        rec.relay_host,
        rec.relay_ip,
        rec.delay,
        rec.response,
    ) == (
        "95154657C",
        "h-493fac8f3@h-ea3f4afa.com",
        "h-195704c@h-20b651e8120a33ec11.com",
        "local",
        "local",
        "",
        0.1,
        'delivered to command: procmail -a "$EXTENSION" DEFAULT=$HOME/Maildir/',
    )


def test_an_unbracketed_recipient_is_read() -> None:
    rec = new_parser().parse_message(
        "postfix/local",
        "2A22C263F6: to=user@hostname.example.com, orig_to=root@localhost, relay=local, "
        "delay=0.07, delays=0.04/0/0/0.03, dsn=2.0.0, status=sent (delivered to command: "
        'procmail -a "$EXTENSION")',
        time=REFERENCE,
        host="mail",
        pid=7,
    )
    assert isinstance(rec, Delivery)
    assert (rec.recipient, rec.orig_to, rec.daemon, rec.host, rec.pid) == (
        "user@hostname.example.com",
        "root@localhost",
        "local",
        "mail",
        7,
    )


def test_a_quoted_recipient_with_spaces_is_read() -> None:
    rec = parse(
        'Jul  5 17:24:35 mail postfix/smtp[9635]: D298F2C60812: to=<"user 1234 with '
        'space"@icloud.com>, relay=mx6.mail.icloud.com[17.178.97.79]:25, delay=428621, '
        "delays=428619/0.02/1.9/0, dsn=4.7.0, status=deferred (host mx6.mail.icloud.com"
        "[17.178.97.79] refused to talk to me: 550 5.7.0 Blocked - see "
        "https://support.proofpoint.com/dnsbl-lookup.cgi?ip=142.93.169.220)",
        Delivery,
    )
    assert rec.recipient == '"user 1234 with space"@icloud.com'
    assert rec.response.endswith("?ip=142.93.169.220")


def test_optional_fields_between_the_fixed_ones_are_passed_over() -> None:
    rec = parse(
        "2013 Jun 10 09:29:10.123 gds39d postfix/smtp[11106]: C03C7C2C13DXXXX: "
        "to=<d4v1d.kupp0@af41i.e0f>, relay=gmail-smtp-in.l.google.com[173.194.70.27]:25, "
        "conn_use=3, delay=0.06, delays=0/0/0.02/0.03, dsn=5.1.1, status=bounced (host "
        "gmail-smtp-in.l.google.com[173.194.70.27] said: 550-5.1.1 The email account that you "
        "tried to reach does not exist. (in reply to RCPT TO command))",
        Delivery,
    )
    assert (rec.relay_port, rec.delay, rec.dsn, rec.status) == (25, 0.06, "5.1.1", "bounced")
    tls = parse(
        "Jan  1 00:00:00 mail postfix/smtp[1]: 7EE668039: to=<user@example.com>, "
        "relay=mail.example.com[1.2.3.4]:25, delay=3.6, delays=0.08/0.02/0.85/0.14, "
        "tls=dane/!requiretls:nocertmatch, dsn=2.1.5, status=sent (250 2.0.0 Ok: queued as "
        "153053D)",
        Delivery,
    )
    assert (tls.dsn, tls.status, tls.queued_as) == ("2.1.5", "sent", "153053D")


def test_an_ipv6_relay_is_split_on_its_last_bracket() -> None:
    rec = parse(
        "Jan  1 00:00:00 mail postfix/smtp[1]: 4E74613FE76: to=<redacted@gmail.com>, "
        "relay=gmail-smtp-in.l.google.com[2607:f8b0:400e:c04::1b]:25, delay=1.9, "
        "delays=0.05/0/1.1/0.71, dsn=5.7.1, status=bounced (host gmail-smtp-in.l.google.com"
        "[2607:f8b0:400e:c04::1b] said: 550 5.7.1 blocked. (in reply to end of DATA command))",
        Delivery,
    )
    assert (rec.relay_host, rec.relay_ip, rec.relay_port) == (
        "gmail-smtp-in.l.google.com",
        "2607:f8b0:400e:c04::1b",
        25,
    )


def test_a_status_line_cut_short_keeps_what_there_is_of_the_response() -> None:
    rec = parse(
        "2024-04-25T22:16:21.664823+02:00 MYDESKTOP postfix/error[9407]: 4cDCnd66Hyz1XPWFF: "
        "to=<user@domain.com>, orig_to=<other-user@other-domain.net>, relay=none, "
        "delay=248321, delays=248262/59/0/0, dsn=4.4.1, status=deferred (delivery temporarily "
        "suspended: connect to domain.co",
        Delivery,
    )
    assert (rec.daemon, rec.status, rec.response) == (
        "error",
        "deferred",
        "delivery temporarily suspended: connect to domain.co",
    )


def test_text_after_the_closing_parenthesis_is_not_part_of_the_response() -> None:
    rec = new_parser().parse_message(
        "postfix/error",
        "2298F5F619: to=<admin@corp.com>, relay=none, delay=89758, delays=89758/0.02/0/0, "
        "dsn=4.4.1, status=deferred (delivery temporarily suspended: connect to "
        "mail.corp.com[1.1.1.1]:25: Connection timed out) 215",
        time=REFERENCE,
    )
    assert isinstance(rec, Delivery)
    assert rec.response == (
        "delivery temporarily suspended: connect to mail.corp.com[1.1.1.1]:25: Connection timed out"
    )


def test_an_address_verification_status_is_kept_as_logged() -> None:
    rec = new_parser().parse_message(
        "postfix/error",
        "3E29030F8637E: to=<user@yahoo.com>, relay=none, delay=0.01, "
        "delays=0.01/0/0/0, dsn=5.1.1, status=undeliverable-but-not-cached (User unknown in "
        "virtual alias table)",
        time=REFERENCE,
    )
    assert isinstance(rec, Delivery)
    assert rec.status == "undeliverable-but-not-cached"


def test_a_status_line_without_status_is_counted_unparsed() -> None:
    line = (
        "Jun  3 10:40:59 mail postfix/smtp[9890]: 776E41855DB2: to=<a@example.com>, "
        "relay=mx.example.com[11.22.33.44]:25, delay=1.9, delays=0/0/1.5/0.37, dsn=5.1.1"
    )
    assert skip_reason(line) == "unparsed_postfix"


# -- rejects ---------------------------------------------------------------------------
def test_a_noqueue_reject_gives_stage_client_reply_and_envelope() -> None:
    rec = parse(
        "2023-03-14T00:37:06.630804+01:00 helga postfix/smtpd[304356]: NOQUEUE: reject: RCPT "
        "from smtp.csp.res.in[117.244.254.50]: 450 4.1.8 <sabrina@S510.gigasys>: Sender address "
        "rejected: Domain not found; from=<sabrina@S510.gigasys> to=<person@example.net> "
        "proto=ESMTP helo=<galaxy.csp.res.in>",
        Reject,
    )
    assert rec == Reject(
        datetime(2023, 3, 13, 23, 37, 6, 630804, tzinfo=UTC),
        "helga",
        "smtpd",
        304356,
        None,
        "reject",
        "RCPT",
        "smtp.csp.res.in",
        "117.244.254.50",
        "450",
        "4.1.8",
        "<sabrina@S510.gigasys>: Sender address rejected: Domain not found",
        "sabrina@S510.gigasys",
        "person@example.net",
        "galaxy.csp.res.in",
    )


def test_a_reject_after_the_queue_file_exists_carries_the_queue_id() -> None:
    rec = parse(
        "Feb 16 22:23:11 mx postfix/smtpd[17727]: 769FF2E0760: reject: RCPT from "
        "h-72f555a0840e4b9553[117.165.155.187]: 550 5.1.1 <h-f91a317fd08716dbf2@h-ff6b5e9182fd933"
        ".com>: Recipient address rejected: User unknown in virtual mailbox table; "
        "from=<h-59bd@h-183bcda0e2fe4.com> to=<h-f91a317fd08716dbf2@h-ff6b5e9182fd933.com> "
        "proto=ESMTP helo=<h-72f555a0840e4b9553>",
        Reject,
    )
    assert (
        rec.queue_id,
        rec.action,
        rec.stage,
        rec.client_name,
        rec.client_ip,
        rec.code,
        rec.dsn,
        rec.sender,
        rec.recipient,
        rec.helo,
    ) == (
        "769FF2E0760",
        "reject",
        "RCPT",
        "h-72f555a0840e4b9553",
        "117.165.155.187",
        "550",
        "5.1.1",
        "h-59bd@h-183bcda0e2fe4.com",
        "h-f91a317fd08716dbf2@h-ff6b5e9182fd933.com",
        "h-72f555a0840e4b9553",
    )
    assert rec.text == (
        "<h-f91a317fd08716dbf2@h-ff6b5e9182fd933.com>: Recipient address "
        "rejected: User unknown in virtual mailbox table"
    )


def test_a_postscreen_reject_in_its_comma_form_is_read() -> None:
    rec = parse(
        "2023-03-14T00:26:51.985219+01:00 helga postfix/postscreen[3163107]: NOQUEUE: reject: "
        "RCPT from [185.246.220.193]:62795: 550 5.7.1 Service unavailable; client "
        "[185.246.220.193] blocked using zen.spamhaus.org; from=<person@example.net>, "
        "to=<zzzzzzzzzzzzzzzzzezihe@hotmail.com>, proto=ESMTP, helo=<3BqSwxw>",
        Reject,
    )
    assert rec == Reject(
        datetime(2023, 3, 13, 23, 26, 51, 985219, tzinfo=UTC),
        "helga",
        "postscreen",
        3163107,
        None,
        "reject",
        "RCPT",
        "",
        "185.246.220.193",
        "550",
        "5.7.1",
        "Service unavailable; client [185.246.220.193] blocked using zen.spamhaus.org",
        "person@example.net",
        "zzzzzzzzzzzzzzzzzezihe@hotmail.com",
        "3BqSwxw",
    )


def test_a_postscreen_connect_reject_has_no_envelope() -> None:
    rec = new_parser().parse_message(
        "postfix/postscreen",
        "NOQUEUE: reject: CONNECT from [1.2.3.4]:1337: too many connections",
        time=REFERENCE,
    )
    assert isinstance(rec, Reject)
    assert (rec.stage, rec.client_ip, rec.code, rec.dsn, rec.text, rec.sender, rec.recipient) == (
        "CONNECT",
        "1.2.3.4",
        "",
        "",
        "too many connections",
        None,
        "",
    )


def test_a_vrfy_reject_has_a_recipient_but_no_sender() -> None:
    rec = new_parser().parse_message(
        "postfix/smtpd",
        "NOQUEUE: reject: VRFY from unknown[2001:968:9999:20:88b:9b7d:2a54:2bd2]: "
        "454 4.7.1 <aap@henk.com>: Relay access denied; to=<aap@henk.com> proto=SMTP helo=<me>",
        time=REFERENCE,
    )
    assert isinstance(rec, Reject)
    assert (
        rec.stage,
        rec.client_ip,
        rec.code,
        rec.dsn,
        rec.text,
        rec.sender,
        rec.recipient,
        rec.helo,
    ) == (
        "VRFY",
        "2001:968:9999:20:88b:9b7d:2a54:2bd2",
        "454",
        "4.7.1",
        "<aap@henk.com>: Relay access denied",
        None,
        "aap@henk.com",
        "me",
    )


def test_a_milter_reject_from_cleanup_has_no_smtp_code() -> None:
    rec = parse(
        "Jan 25 18:54:51 mx postfix/cleanup[8966]: B37FD2E05B9: milter-reject: END-OF-MESSAGE "
        "from h-ca74a0a011076cd81347f8f11e[254.65.43.194]: 4.7.1 Try again later; "
        "from=<bounce+1b6a63.922c68-user=h-ffd2115d4f@h-79b594737831a5d176dabf9.com> "
        "to=<h-7abde52c2@h-ffd2115d4f.com> proto=ESMTP helo=<h-ca74a0a011076cd81347f8f11e>",
        Reject,
    )
    assert (
        rec.daemon,
        rec.queue_id,
        rec.action,
        rec.stage,
        rec.client_ip,
        rec.code,
        rec.dsn,
        rec.text,
    ) == (
        "cleanup",
        "B37FD2E05B9",
        "milter-reject",
        "END-OF-MESSAGE",
        "254.65.43.194",
        "",
        "4.7.1",
        "Try again later",
    )


@pytest.mark.parametrize(
    ("message", "action", "sender", "recipient"),
    [
        (
            "NOQUEUE: reject_warning: RCPT from example.com[93.184.216.34]: 553 5.7.1 "
            "<sender@example.com>: Sender address rejected: not owned by user ph123; "
            "from=<sender@example.com> to=<recipient@example.com> proto=ESMTP helo=<example.com>",
            "reject_warning",
            "sender@example.com",
            "recipient@example.com",
        ),
        (
            "NOQUEUE: discard: MAIL from ccm231.constantcontact.com[208.75.123.231]: "
            "<b==_4343@in.constantcontact.com>: Sender address SPAM; "
            "from=<b==_4343@in.constantcontact.com> proto=ESMTP helo=<ccm231.constantcontact.com>",
            "discard",
            "b==_4343@in.constantcontact.com",
            "",
        ),
        (
            "NOQUEUE: milter-reject: RCPT from mailrelay.example.com[8.8.8.8]: 451 4.7.1 Greylisting "
            "in action, please come back later; from=<support@example.com> to=<example@example.org> "
            "proto=ESMTP helo=<mailrelay.example.com>",
            "milter-reject",
            "support@example.com",
            "example@example.org",
        ),
        (
            "NOQUEUE: filter: RCPT from foo.key.corp.com[192.168.1.1]: <foo.key.corp.com[192.168.1.1]>: "
            "Client host triggers FILTER smtp:[127.0.0.1]:10025; from=<foo.bar@subdomain.corp.com> "
            "to=<firstname.lastname@othercorp.com> proto=ESMTP helo=<foo.key.corp.com> 294",
            "filter",
            "foo.bar@subdomain.corp.com",
            "firstname.lastname@othercorp.com",
        ),
        (
            "NOQUEUE: reject: RCPT from unknown[30.207.11.100]: 450 4.7.1 <>: Sender address "
            "rejected: You are sending too many emails; from=<> to=<h-2d34d8bb8@h-93a1a37cd1.com> "
            "proto=ESMTP helo=<localhost>",
            "reject",
            "",
            "h-2d34d8bb8@h-93a1a37cd1.com",
        ),
    ],
)
def test_every_policy_action_is_a_reject_record(
    message: str, action: str, sender: str, recipient: str
) -> None:
    rec = new_parser().parse_message("postfix/smtpd", message, time=REFERENCE)
    assert isinstance(rec, Reject)
    assert (rec.queue_id, rec.action, rec.sender, rec.recipient) == (
        None,
        action,
        sender,
        recipient,
    )


def test_a_before_queue_filter_reject_has_a_stage_but_no_client() -> None:
    rec = new_parser().parse_message(
        "smtpd",
        "DF66E940333: proxy-reject: END-OF-MESSAGE: 554 5.7.0 Reject, contact "
        "postmaster@example.com, id=31619-02 - spam; from=<a@example.com> to=<user2@example2.com> "
        "proto=SMTP helo=<17.33.12.53>",
        time=REFERENCE,
    )
    assert isinstance(rec, Reject)
    assert (
        rec.queue_id,
        rec.action,
        rec.stage,
        rec.client_name,
        rec.client_ip,
        rec.code,
        rec.dsn,
        rec.text,
        rec.sender,
        rec.recipient,
        rec.helo,
    ) == (
        "DF66E940333",
        "proxy-reject",
        "END-OF-MESSAGE",
        "",
        "",
        "554",
        "5.7.0",
        "Reject, contact postmaster@example.com, id=31619-02 - spam",
        "a@example.com",
        "user2@example2.com",
        "17.33.12.53",
    )


def test_a_header_check_reject_from_cleanup_names_the_header() -> None:
    rec = new_parser().parse_message(
        "postfix/cleanup",
        "4104E3D: reject: header Subject: you won from mail from 061238241086.static.ctinets.com"
        "[61.238.241.86]; from=<wumt5@cchfdc.com> to=<voorzitter@example.com> proto=ESMTP "
        "helo=<ecsolved.com>: 5.7.1 message content rejected",
        time=REFERENCE,
    )
    assert isinstance(rec, Reject)
    assert (
        rec.queue_id,
        rec.action,
        rec.stage,
        rec.client_name,
        rec.client_ip,
        rec.code,
        rec.dsn,
        rec.text,
        rec.sender,
        rec.recipient,
        rec.helo,
    ) == (
        "4104E3D",
        "reject",
        "header",
        "061238241086.static.ctinets.com",
        "61.238.241.86",
        "",
        "5.7.1",
        "Subject: you won from mail: message content rejected",
        "wumt5@cchfdc.com",
        "voorzitter@example.com",
        "ecsolved.com",
    )


def test_header_warnings_and_replacements_are_not_rejects() -> None:
    parser = new_parser()
    line = (
        "Jun  3 10:40:57 mail postfix/sender-cleanup/cleanup[9709]: 4AA091855DA0: replace: "
        "header MIME-Version: 1.0 from some.domain.name[1.2.3.4]; from=<user@sender.com> "
        "to=<invalid.email@example.com> proto=ESMTP helo=<[192.168.0.178]>: Mime-Version: 1.0"
    )
    assert skip_reason(line, parser) == "uninteresting"


# -- SASL failures and bounce notices --------------------------------------------------
def test_a_cyrus_era_sasl_failure_has_no_username() -> None:
    rec = parse(
        "Dec 27 07:05:42 mail postfix/smtpd[3564]: warning: unknown[222.162.115.97]: SASL LOGIN "
        "authentication failed: UGFzc3dvcmQ6",
        SaslFailure,
    )
    assert rec == SaslFailure(
        at(2025, 12, 27, 7, 5, 42),
        "mail",
        "smtpd",
        3564,
        None,
        "unknown",
        "222.162.115.97",
        "LOGIN",
        "UGFzc3dvcmQ6",
        "",
    )


def test_a_sasl_failure_with_username_names_the_login() -> None:
    rec = new_parser().parse_message(
        "postfix/submission/smtpd",
        "warning: mx.example.org[192.168.100.132]: SASL LOGIN authentication failed: "
        "authentication failure, sasl_username=john.doe@exmaple.org",
        time=REFERENCE,
        host="relay1",
        pid=12,
    )
    assert rec == SaslFailure(
        REFERENCE,
        "relay1",
        "smtpd",
        12,
        None,
        "mx.example.org",
        "192.168.100.132",
        "LOGIN",
        "authentication failure",
        "john.doe@exmaple.org",
    )


def test_a_sasl_failure_from_an_ipv6_client_is_read() -> None:
    rec = parse(
        "Apr 26 10:55:19 tcc1 postfix/smtpd[21126]: warning: unknown[2001:db8::5]: "
        "SASL PLAIN authentication failed: generic failure",
        SaslFailure,
    )
    assert (rec.client_ip, rec.method, rec.reason) == ("2001:db8::5", "PLAIN", "generic failure")


def test_a_sasl_failure_naming_no_client_is_skipped() -> None:
    line = (
        "Apr 26 10:55:19 tcc1 postfix/smtpd[21126]: warning: SASL authentication failure: "
        "Password verification failed"
    )
    assert skip_reason(line) == "uninteresting"


def test_a_bounce_notice_links_the_message_to_its_notification() -> None:
    rec = parse(
        "Dec 29 03:03:48 mail postfix/bounce[9321]: 732BB407C3: sender non-delivery "
        "notification: 5DE184083C",
        BounceNotice,
    )
    assert rec == BounceNotice(
        at(2025, 12, 29, 3, 3, 48),
        "mail",
        "bounce",
        9321,
        "732BB407C3",
        "non-delivery",
        "5DE184083C",
    )


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("65AFB8B5: sender delivery status notification: 1DF35917", "delivery status"),
        ("264FE1A18: sender delay notification: 0A87A1A08", "delay"),
        (
            "482E4404AC8: postmaster non-delivery notification: 47335405A44",
            "postmaster non-delivery",
        ),
    ],
)
def test_every_kind_of_bounce_notice_is_named(message: str, kind: str) -> None:
    rec = new_parser().parse_message("postfix/bounce", message, time=REFERENCE)
    assert isinstance(rec, BounceNotice)
    assert rec.kind == kind


# -- what is skipped, and why ----------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "empty"),
        ("   \t", "empty"),
        (
            "Jun  3 10:40:57 mail postfix/cleanup[1005]: 4AA091855DA0: message-id=<a\x00\x00b@x>",
            "nul",
        ),
        ("Traceback (most recent call last):", "not_syslog"),
        ("ir/)", "not_syslog"),
        ("2021-01-25 10:00:05.006274", "not_syslog"),
        (
            "postfix/smtp[17813]: connect to domain.com[192.168.0.1]:25: No route to host",
            "not_syslog",
        ),
        (
            "Jan 27 06:36:56 mail dovecot: imap-login: Login: user=<h-304@h-ffeb17e38996c.com>",
            "not_postfix",
        ),
        (  # longer than any host name: no relay is called that (and no column holds it)
            f"Jun  3 10:40:57 {'h' * 256} postfix/qmgr[1005]: 776E41855DB2: removed",
            "not_syslog",
        ),
        (  # a year no log line comes from (and a local day that cannot be told)
            "0001-01-01T00:00:00-05:00 mail postfix/qmgr[1005]: 776E41855DB2: removed",
            "bad_timestamp",
        ),
        ("9999 Dec 31 23:59:59 mail postfix/qmgr[1005]: 776E41855DB2: removed", "bad_timestamp"),
        (
            "Jun  3 10:40:57 mail amavis[2279]: (02279-04) Passed CLEAN {RelayedOpenRelay}",
            "not_postfix",
        ),
        (
            "Jun  3 10:40:57 mail opendkim[235]: 4AA091855DA0: DKIM-Signature field added",
            "not_postfix",
        ),
        (
            "2023-03-14T00:00:31.185246+01:00 helga postfix/postscreen[3163107]: CONNECT from "
            "[185.48.118.128]:36942 to [188.34.187.246]:25",
            "uninteresting",
        ),
        (
            "2023-03-14T00:01:16.648293+01:00 helga postfix/dnsblog[301152]: addr 180.214.239.18 listed "
            "by domain zen.spamhaus.org as 127.0.0.4",
            "uninteresting",
        ),
        (
            "Dec  7 13:33:34 mail postfix/anvil[18492]: statistics: max connection rate 2/60s for "
            "(submission:68.183.218.8) at Dec  7 13:28:01",
            "uninteresting",
        ),
        (
            "Jun  3 10:40:57 mail postfix/submission/smtpd[9708]: connect from some.domain.name[1.2.3.4]",
            "uninteresting",
        ),
        (
            "Jun  3 10:40:57 mail postfix/submission/smtpd[9708]: disconnect from some.domain.name"
            "[1.2.3.4] ehlo=2 starttls=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=8",
            "uninteresting",
        ),
        (
            "Jun  3 10:40:57 mail postfix/submission/smtpd[9708]: Anonymous TLS connection established "
            "from some.domain.name[1.2.3.4]: TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 "
            "bits)",
            "uninteresting",
        ),
        (
            "Jun  3 10:40:57 mail postfix/smtpd[9708]: improper command pipelining after CONNECT "
            "from unknown[1.2.3.4]: EHLO x\\r\\n",
            "uninteresting",
        ),
        (
            "Jun  3 10:40:57 mail postfix/smtpd[9708]: SSL_accept error from unknown[1.2.3.4]: "
            "lost connection",
            "uninteresting",
        ),
        (  # a space before the first ": ", but it names a client= line: counted as unparsed
            "Jun  3 10:40:57 mail postfix/smtpd[9708]: 4AA0 91855DA0: client=x[1.2.3.4]",
            "unparsed_postfix",
        ),
        (
            "2023-03-14T04:52:51.090178+01:00 helga postfix/submission/smtpd[320809]: warning: non-SMTP "
            "command from unknown[198.235.24.129]: GET / HTTP/1.1",
            "uninteresting",
        ),
        (
            "Mar 16 12:28:02 123-mail postfix/smtpd[16268]: fatal: file /etc/postfix/main.cf: parameter "
            "default_privs: unknown user name value: nobody",
            "uninteresting",
        ),
        (
            "Dec 17 06:25:48 sm02 /postfix-script[112854]: the Postfix mail system is running: PID: "
            "95072",
            "uninteresting",
        ),
        (
            "Feb 16 00:07:34 smtpnode07 postfix-10.20.30.40/something[2342]: unsupported message",
            "uninteresting",
        ),
        (
            "Sep 16 00:07:41 smtp-node07.com postfix-10.20.30.40/smtp[31868]: 0D59F4165A: host "
            "mx-aol.mail.gm0.yahoodns.net[44.55.66.77] said: 421 4.7.0 [TSS04] Messages deferred "
            "(in reply to MAIL FROM command)",
            "uninteresting",
        ),
        (
            "Mar 16 23:30:44 123-mail postfix/qmgr[29980]: warning: please avoid flushing the whole "
            "queue when you have",
            "uninteresting",
        ),
        ("Feb 30 10:00:00 mail postfix/qmgr[1005]: 776E41855DB2: removed", "bad_timestamp"),
    ],
)
def test_lines_without_a_record_are_counted_by_reason(line: str, reason: str) -> None:
    assert reason in SKIP_REASONS
    assert skip_reason(line) == reason


def test_a_line_over_64_kib_is_skipped_as_too_long() -> None:
    line = (
        b"Jun  3 10:40:57 mail postfix/cleanup[9709]: 4AA091855DA0: message-id=<"
        + b"x" * (64 * 1024)
        + b">"
    )
    assert skip_reason(line) == "too_long"
    assert skip_reason(line.decode()) == "too_long"


def test_a_long_message_id_under_64_kib_is_kept() -> None:
    value = "e" * 3000 + "@example.com"
    rec = parse(
        f"Jan 26 15:50:21 mx postfix/cleanup[22403]: 1A3642E0C5C: message-id=<{value}>",
        MessageIdLine,
    )
    assert rec.message_id == value


def test_leading_nul_bytes_of_a_crash_are_dropped_and_the_line_parsed() -> None:
    rec = parse(
        b"\x00" * 40 + b"Jun  3 10:40:59 mail postfix/qmgr[1005]: 776E41855DB2: removed",
        QmgrRemoved,
    )
    assert rec.queue_id == "776E41855DB2"
    assert skip_reason(b"\x00\x00\x00") == "nul"


def test_invalid_utf8_is_replaced_not_skipped() -> None:
    parser = new_parser()
    rec = parser.parse(
        b"Jun  3 10:40:57 mail postfix/qmgr[1005]: 4AA091855DA0: "
        b"from=<j\xfcrgen@example.de>, size=391, nrcpt=1 (queue active)"
    )
    assert isinstance(rec, QmgrFrom)
    assert rec.sender == "j\ufffdrgen@example.de"
    assert parser.replaced_utf8 == 1
    assert not parser.stats


def test_bytes_and_text_with_their_newline_give_the_same_record() -> None:
    line = "Jun  3 10:40:59 mail postfix/qmgr[1005]: 776E41855DB2: removed"
    records = [
        new_parser().parse(form)
        for form in (
            line,
            line + "\n",
            line.encode(),
            line.encode() + b"\r\n",
            bytearray(line, "ascii"),
        )
    ]
    assert all(rec == records[0] for rec in records)
    assert records[0] is not None


def test_input_that_is_not_text_is_counted_not_raised() -> None:
    parser = new_parser()
    assert parser.parse(None) is None  # type: ignore[arg-type]
    assert parser.parse(12345) is None  # type: ignore[arg-type]
    assert parser.stats == {"not_syslog": 2}


@pytest.mark.parametrize(
    ("program", "daemon"),
    [
        ("postfix-out/smtp", "smtp"),
        ("postfix-239.58.50.50/qmgr", "qmgr"),
        ("postfix/submission/smtpd", "smtpd"),
        ("postfix/amavis/smtp", "smtp"),
        ("postfix/sender-cleanup/cleanup", "cleanup"),
    ],
)
def test_the_daemon_is_the_last_element_of_the_program(program: str, daemon: str) -> None:
    messages = {
        "smtp": "776E41855DB2: to=<a@example.com>, relay=none, delay=1, delays=1/0/0/0, "
        "dsn=4.4.1, status=deferred (connect to example.com[192.0.2.1]:25: refused)",
        "qmgr": "776E41855DB2: removed",
        "smtpd": "776E41855DB2: client=localhost[127.0.0.1]",
        "cleanup": "776E41855DB2: message-id=<x@example.com>",
    }
    rec = new_parser().parse(f"Jun  3 10:40:59 relay2 {program}[42]: {messages[daemon]}")
    assert rec is not None
    assert (rec.host, rec.daemon, rec.pid, rec.queue_id) == ("relay2", daemon, 42, "776E41855DB2")


def test_stats_is_a_counter_of_the_reasons_met() -> None:
    parser = new_parser()
    parser.parse("garbage")
    parser.parse("garbage")
    assert parser.stats == Counter(not_syslog=2)
    assert isinstance(parser.stats, Counter)


def test_the_skip_counts_add_up_to_the_lines_without_a_record() -> None:
    parser = new_parser()
    lines = [
        "Jun  3 10:40:59 mail postfix/qmgr[1005]: 776E41855DB2: removed",
        "Jun  3 10:40:57 mail postfix/submission/smtpd[9708]: connect from x[1.2.3.4]",
        "garbage",
        "",
        "Jan 27 06:36:56 mail dovecot: imap-login: Login",
        "Jun  3 10:40:59 mail postfix/smtp[1]: 776E41855DB2: to=<a@b>, relay=none",
    ]
    nones = sum(parser.parse(line) is None for line in lines)
    assert nones == 5
    assert sum(parser.stats.values()) == nones
    assert parser.stats["parser_error"] == 0


# -- timestamps ------------------------------------------------------------------------
REMOVED = "{stamp} mail postfix/qmgr[1005]: 776E41855DB2: removed"


def times(parser: LineParser, *stamps: str) -> list[datetime]:
    out = []
    for stamp in stamps:
        rec = parser.parse(REMOVED.format(stamp=stamp))
        assert rec is not None, (stamp, parser.stats)
        out.append(rec.time)
    return out


def test_classic_times_are_aware_and_in_the_configured_zone() -> None:
    (time,) = times(new_parser(), "Jun  3 10:40:59")
    assert time == at(2026, 6, 3, 10, 40, 59)
    assert time.utcoffset() == timedelta(hours=8)


def test_a_first_month_after_the_reference_month_is_last_year() -> None:
    parser = new_parser(reference=at(2026, 1, 2, 6, 25))
    assert times(parser, "Dec 31 23:59:59")[0].year == 2025
    assert (parser.year, parser.last_month) == (2025, 12)


def test_the_year_rolls_over_at_new_year() -> None:
    parser = new_parser(reference=at(2027, 1, 2, 6, 25))
    assert times(
        parser, "Dec 31 23:59:58", "Dec 31 23:59:59", "Jan  1 00:00:00", "Jan  1 00:00:01"
    ) == [
        at(2026, 12, 31, 23, 59, 58),
        at(2026, 12, 31, 23, 59, 59),
        at(2027, 1, 1, 0, 0, 0),
        at(2027, 1, 1, 0, 0, 1),
    ]
    assert (parser.year, parser.last_month) == (2027, 1)


def test_a_straggler_from_last_december_keeps_its_year_without_moving_the_state() -> None:
    parser = new_parser(reference=at(2027, 1, 2, 6, 25))
    stamps = times(
        parser, "Dec 31 23:59:59", "Jan  1 00:00:02", "Dec 31 23:59:58", "Jan  1 00:00:03"
    )
    assert [t.year for t in stamps] == [2026, 2027, 2026, 2027]
    assert (parser.year, parser.last_month) == (2027, 1)


def test_small_backward_steps_keep_the_year() -> None:
    parser = new_parser(reference=at(2026, 6, 30))
    assert [
        t.year
        for t in times(
            parser, "Apr 30 23:59:59", "May  1 00:00:00", "Apr 30 23:59:58", "May  1 00:00:01"
        )
    ] == [2026] * 4


def test_restored_state_continues_a_file_into_the_next_year() -> None:
    parser = new_parser(reference=at(2027, 12, 31), year=2026, last_month=12)
    assert times(parser, "Dec 31 23:59:59", "Jan  1 00:00:00") == [
        at(2026, 12, 31, 23, 59, 59),
        at(2027, 1, 1),
    ]


def test_state_set_on_a_running_parser_applies_to_the_next_line() -> None:
    parser = new_parser(reference=at(2026, 6, 1))
    assert times(parser, "Dec 31 23:59:59")[0].year == 2025
    parser.last_month = 12
    parser.year = 2030
    assert times(parser, "Dec 31 23:59:59", "Jan  1 00:00:00") == [
        at(2030, 12, 31, 23, 59, 59),
        at(2031, 1, 1),
    ]


def test_without_reference_or_state_the_year_comes_from_now() -> None:
    with time_machine.travel(at(2026, 3, 5, 12, 0), tick=False):
        parser = LineParser(TZ)
    assert [t.year for t in times(parser, "Dec 30 10:00:00", "Mar  5 11:00:00")] == [2025, 2026]


def test_a_day_not_space_padded_is_accepted() -> None:
    assert times(new_parser(), "Jun 3 10:40:59") == [at(2026, 6, 3, 10, 40, 59)]


def test_an_invalid_date_does_not_move_the_year() -> None:
    parser = new_parser(reference=at(2027, 1, 2))
    times(parser, "Dec 31 23:59:59")
    assert parser.parse(REMOVED.format(stamp="Jan 32 00:00:00")) is None
    assert (parser.year, parser.last_month) == (2026, 12)


def test_lines_of_one_hour_get_their_own_minutes_and_seconds() -> None:
    parser = new_parser()
    assert times(
        parser, "Jun  3 10:00:00", "Jun  3 10:00:00", "Jun  3 10:59:59", "Jun  3 10:07:30"
    ) == [
        at(2026, 6, 3, 10),
        at(2026, 6, 3, 10),
        at(2026, 6, 3, 10, 59, 59),
        at(2026, 6, 3, 10, 7, 30),
    ]


def test_local_times_follow_daylight_saving_time() -> None:
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    parser = LineParser(berlin, reference=datetime(2026, 12, 1, tzinfo=berlin))
    winter, summer = times(parser, "Mar 29 01:59:59", "Mar 29 03:00:00")
    assert summer - winter == timedelta(hours=1, seconds=1)  # wall clock, as logged
    assert summer.utcoffset() == timedelta(hours=2)
    assert winter.utcoffset() == timedelta(hours=1)


def test_an_rfc3339_time_keeps_its_offset_and_converts_correctly() -> None:
    (time,) = times(new_parser(), "2023-03-14T00:08:35.948047+01:00")
    assert time == datetime(2023, 3, 13, 23, 8, 35, 948047, tzinfo=UTC)
    assert time.utcoffset() == timedelta(hours=1)
    assert time.astimezone(TZ) == at(2023, 3, 14, 7, 8, 35) + timedelta(microseconds=948047)


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2024-03-22T08:00:01+0100", datetime(2024, 3, 22, 7, 0, 1, tzinfo=UTC)),
        ("2024-03-22T08:00:01-0330", datetime(2024, 3, 22, 11, 30, 1, tzinfo=UTC)),
        ("2024-03-22T08:00:01.000+00:00", datetime(2024, 3, 22, 8, 0, 1, tzinfo=UTC)),
        ("2024-03-22T08:00:01Z", datetime(2024, 3, 22, 8, 0, 1, tzinfo=UTC)),
        ("2024-03-22T08:00:01.5", datetime(2024, 3, 22, 8, 0, 1, 500000, tzinfo=TZ)),
    ],
)
def test_rfc3339_offset_forms_are_all_read(stamp: str, expected: datetime) -> None:
    (time,) = times(new_parser(), stamp)
    assert time == expected
    assert time.tzinfo is not None


def test_the_hhmm_offset_of_journalctl_short_iso_is_read() -> None:
    rec = parse(
        "2024-04-25T22:16:21+0200 MYDESKTOP postfix/error[70721]: B5D7A1858: "
        "to=<all@remote>, relay=none, delay=734, delays=734/0.02/0/0, dsn=4.3.0, "
        "status=deferred (mail transport unavailable)",
        Delivery,
    )
    assert rec.time == datetime(2024, 4, 25, 22, 16, 21, tzinfo=timezone(timedelta(hours=2)))
    assert rec.time == datetime(2024, 4, 25, 20, 16, 21, tzinfo=UTC)


def test_the_year_prefixed_form_is_local_time_with_milliseconds() -> None:
    (time,) = times(new_parser(), "2013 Jun 10 09:38:17.123")
    assert time == at(2013, 6, 10, 9, 38, 17) + timedelta(milliseconds=123)
