"""The trace search form: the same fields for the staff page and the command line."""

from __future__ import annotations

import datetime as dt
import re

from django import forms
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from smtplog.models import Status
from smtplog.retention import cutoff
from tracing.search import Criteria

DEFAULT_SPAN = dt.timedelta(hours=24)
QUEUE_ID = re.compile(r"[0-9A-Za-z]{5,32}")
ADDRESS_HELP = _("A whole address, or its beginning: alice@, alice@cs. or ali*")


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"  # the browser's picker; the value is YYYY-MM-DDTHH:MM

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%dT%H:%M")


class TraceForm(forms.Form):
    sender = forms.CharField(
        label=_("Sender"), required=False, max_length=320, help_text=ADDRESS_HELP
    )
    recipient = forms.CharField(
        label=_("Recipient"), required=False, max_length=320, help_text=ADDRESS_HELP
    )
    queue_id = forms.CharField(label=_("Queue ID"), required=False, max_length=32)
    message_id = forms.CharField(
        label=_("Message-ID"),
        required=False,
        max_length=255,
        help_text=_("With or without the angle brackets."),
    )
    client_ip = forms.GenericIPAddressField(
        label=pgettext_lazy("SMTP client", "Client IP"), required=False, unpack_ipv4=True
    )
    sasl_username = forms.CharField(
        label=_("SASL login"), required=False, max_length=320, help_text=_("Whole, or ali*")
    )
    since = forms.DateTimeField(label=_("From"), required=False, widget=DateTimeLocalInput)
    until = forms.DateTimeField(label=_("To"), required=False, widget=DateTimeLocalInput)
    relay = forms.CharField(
        label=_("Relay"), required=False, max_length=255, help_text=_("Host name as logged")
    )
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("any"))] + Status.choices
    )

    def clean_queue_id(self) -> str:
        value = self.cleaned_data["queue_id"].strip()
        if value and not QUEUE_ID.fullmatch(value):
            raise forms.ValidationError(
                _("A queue ID is 5 to 32 letters and digits, such as 4AA091855DA0."),
                code="queue_id",
            )
        return value

    def clean_message_id(self) -> str:
        return self.cleaned_data["message_id"].strip().strip("<>").strip()

    def clean_sender(self) -> str:
        return self._address("sender")

    def clean_recipient(self) -> str:
        return self._address("recipient")

    def _address(self, name: str) -> str:
        value = self.cleaned_data[name].strip().lower()
        if any(c.isspace() for c in value):
            raise forms.ValidationError(_("An address has no spaces."), code="spaces")
        if value.rstrip("*").strip("<>") == "" and value:
            raise forms.ValidationError(
                _("Give at least the first character of the address."), code="empty"
            )
        return value

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data
        now = timezone.now()
        until = data.get("until") or now
        since = data.get("since") or until - DEFAULT_SPAN
        oldest = cutoff(now)
        if since > until:
            self.add_error("until", _("The end of the range is before its start."))
        elif until < oldest:
            self.add_error(
                "until", _("This is older than the logs kept: pick a later end of the range.")
            )
        if since < oldest:
            since = oldest  # "at most the retention window": nothing older is kept anyway
        data["since"], data["until"] = since, until
        return data

    def criteria(self) -> Criteria:
        data = self.cleaned_data
        return Criteria(**{name: data[name] for name in Criteria.__dataclass_fields__})

    @property
    def retention_days(self) -> int:
        return settings.SMTPLOG_RETENTION_DAYS
