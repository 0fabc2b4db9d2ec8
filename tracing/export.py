"""The trace's results as CSV, JSON and plain text (the CSV export, the JSON of a message
page, and the command line all render from here)."""

from __future__ import annotations

import csv
import datetime as dt
import io

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from smtplog.models import Event, Message
from tracing.search import Chain, Criteria, Result

TIME = "%Y-%m-%d %H:%M:%S"


def local(time: dt.datetime | None) -> str | None:
    return timezone.localtime(time).isoformat() if time is not None else None


# JSON


def result_json(result: Result) -> dict:
    """A result with everything the trace knows of it, and what the logs do not show."""
    data = {
        "kind": result.kind,
        "time": local(result.time),
        "relay": result.relay,
        "queue_ids": result.queue_ids,
        "sender": result.sender,
        "client_ip": result.client_ip,
        "recipients": [
            {
                "address": r.address,
                "status": r.status,
                "attempts": r.attempts,
                "last_time": local(r.last_time),
                "last_reply": r.last_reply,
            }
            for r in result.recipients()
        ],
        "attempts": result.attempts,
        "gaps": [{"code": gap.code, "text": gap.text} for gap in result.gaps()],
    }
    if isinstance(result, Chain):
        data["hops"] = [hop_json(hop, result) for hop in result.hops]
        data["events"] = [event_json(e, result.hop_of[e.id].queue_id) for e in result.events]
    else:
        data["events"] = [event_json(result.event, result.event.queue_id)]
    return data


def hop_json(hop: Message, chain: Chain) -> dict:
    origin = next((h for h in chain.hops if h.id == hop.origin_id), None)
    return {
        "queue_id": hop.queue_id,
        "relay": hop.relay,
        "first_seen": local(hop.first_seen),
        "requeued_from": origin.queue_id if origin is not None else None,
        "requeued_as": [h.queue_id for h in chain.hops if h.origin_id == hop.id],
        "sender": hop.sender,
        "client_name": hop.client_name,
        "client_ip": hop.client_ip,
        "sasl_method": hop.sasl_method,
        "sasl_username": hop.sasl_username,
        "size": hop.size,
        "nrcpt": hop.nrcpt,
        "message_id": hop.message_id,
        "expired_at": local(hop.expired_at),
        "removed_at": local(hop.removed_at),
    }


def event_json(event: Event, queue_id: str) -> dict:
    return {
        "time": local(event.time),
        "queue_id": queue_id,
        "status": event.status,
        "recipient": event.recipient,
        "next_hop": event.next_hop,
        "dsn": event.dsn,
        "delay": event.delay,
        "response": event.response,
        "client_ip": event.client_ip,
        "sasl_username": event.sasl_username,
    }


def search_json(criteria: Criteria, results: list[Result], more: bool) -> dict:
    return {
        "criteria": criteria.as_dict(),
        "results": [result_json(r) for r in results],
        "more": more,
    }


# CSV


def csv_header() -> list[str]:
    return [
        _("Time"),
        _("Relay"),
        _("Queue IDs"),
        _("Sender"),
        pgettext("SMTP client", "Client IP"),
        _("Recipients"),
        _("Attempts"),
        _("Not in the logs"),
    ]


def csv_row(result: Result) -> list[str]:
    recipients = "; ".join(f"{r.address}: {r.label} ({r.attempts})" for r in result.recipients())
    return [
        timezone.localtime(result.time).strftime(TIME),
        result.relay,
        " → ".join(result.queue_ids),
        result.sender,
        result.client_ip,
        recipients,
        str(result.attempts),
        " ".join(gap.text for gap in result.gaps()),
    ]


def render_csv(results: list[Result], more: bool) -> str:
    """Every result row; UTF-8 with a BOM so that Excel reads the Chinese right."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(csv_header())
    writer.writerows(csv_row(result) for result in results)
    if more:
        text = _("Only the first %(n)s results are here: narrow the search for the rest.")
        writer.writerow([text % {"n": len(results)}])
    return out.getvalue()


# Plain text (the command line)


def render_text(results: list[Result], more: bool) -> str:
    lines = []
    for result in results:
        lines.append(
            "  ".join(
                part
                for part in (
                    timezone.localtime(result.time).strftime(TIME),
                    result.relay,
                    " -> ".join(result.queue_ids) or "NOQUEUE",
                    result.sender or "-",
                    f"client {result.client_ip}" if result.client_ip else "",
                    f"{result.attempts} attempts" if result.kind == "message" else result.kind,
                )
                if part
            )
        )
        for r in result.recipients():
            lines.append(f"    {r.address}  {r.status}  {r.attempts}  {r.last_reply}".rstrip())
        for event in result.events if result.kind == "event" else []:
            lines.append(f"    {event.response}")
        lines.extend(f"    ! {gap.text}" for gap in result.gaps())
    if more:
        lines.append("(more results: narrow the search, or raise --limit)")
    if not results:
        lines.append("No message matches.")
    return "\n".join(lines) + "\n"
