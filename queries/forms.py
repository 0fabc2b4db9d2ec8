"""The query form: who may ask about which address, for which days."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import unicodedata

from captcha.conf import settings as captcha_settings
from captcha.fields import CaptchaField, CaptchaTextInput
from captcha.models import CaptchaStore
from django import forms
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django.utils.translation import get_language_info
from django.utils.translation import gettext_lazy as _

from smtplog.domains import is_campus_domain
from smtplog.retention import retention_window

# A plain dot-atom local part: no quotes, no %, !, @ or other source-routing characters.
LOCAL_PART = re.compile(r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*")
LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
DAYS_ASKED = 31  # the default range: the last 31 days, today included
TOKEN = re.compile(r"[0-9a-f]{32}")
RETYPED = ("language", "email", "begin", "end")  # kept when another image is asked for


def new_token() -> str:
    return secrets.token_hex(16)


def normalize_email(value: str) -> str:
    """NFKC (full-width letters become ASCII), trimmed, lower-case."""
    return unicodedata.normalize("NFKC", value).strip().lower()


def validate_campus_address(address: str) -> None:
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in address):
        raise forms.ValidationError(
            _("Enter a complete email address, such as username@cs.nthu.edu.tw."), code="invalid"
        )
    if len(local) > 64 or len(address) > 254 or not LOCAL_PART.fullmatch(local):
        raise forms.ValidationError(
            _(
                "Enter a plain address: letters, digits and . _ + - before the @ "
                "(no quotes, %, ! or spaces)."
            ),
            code="local_part",
        )
    labels = domain.split(".")
    if len(domain) > 253 or not all(LABEL.fullmatch(label) for label in labels):
        raise forms.ValidationError(
            _("The part after the @ is not a valid domain name."), code="domain"
        )
    if not is_campus_domain(domain):
        raise forms.ValidationError(
            _(
                "This service is only for addresses of the university: %(domains)s "
                "or one of its subdomains."
            ),
            code="not_campus",
            params={"domains": ", ".join(settings.SMTPLOG_CAMPUS_DOMAINS)},
        )


def default_range(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    first, last = retention_window(today)
    return max(first, last - dt.timedelta(days=DAYS_ASKED - 1)), last


class DateInput(forms.DateInput):
    input_type = "date"  # the browser's date picker; the value is always YYYY-MM-DD

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%d")


class CaptchaInput(CaptchaTextInput):
    """The library's widget with our template: the image at its real size, a localized alt
    text, "Show another image" and the spoken code (when flite is installed)."""

    template_name = "queries/captcha_widget.html"

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["image_size"] = captcha_settings.CAPTCHA_IMAGE_SIZE
        # Django ties help and errors to a field's input, but not inside a MultiWidget:
        # the answer's input is described by the field's help text and, after a wrong
        # answer, its error (their ids as the form's template and Django's give them).
        field_id = (attrs or {}).get("id")
        if field_id:
            hidden, answer = context["widget"]["subwidgets"]
            hidden["attrs"].pop("aria-invalid", None)
            described = [f"{field_id}_helptext"]
            if answer["attrs"].get("aria-invalid"):
                described.append(f"{field_id}_error")
            answer["attrs"]["aria-describedby"] = " ".join(described)
        return context


class OnceCaptchaField(CaptchaField):
    """django-simple-captcha's field, its challenge checked and burnt in one statement.

    The library's clean() deletes every expired challenge of every visitor, reads this
    one, then deletes it: three statements and two commits on every submit. Here a single
    DELETE ... RETURNING burns the challenge, right or wrong, and says whether the answer
    was right and in time, with the library's rules (answer trimmed and case-folded,
    CAPTCHA_TEST_MODE's "passed"). Challenges nobody answered are removed by the
    cleanup_captchas task.

    Kept because the form's target needs it: with the library's clean() the form took
    127 POSTs/s (p95 151 ms), with this 248/s (p95 82 ms), target 200/s (bench/report.py,
    2026-12-03, 4 gunicorn workers; an index on the challenges' expiration did not help).
    tests/queries/test_form.py pins its behaviour: a challenge works once, right or wrong.
    """

    def clean(self, value):
        forms.MultiValueField.clean(self, value)  # required, and both parts present
        response, value[1] = (value[1] or "").strip().lower(), ""
        if not self.required and not response:
            return value
        stored = _burn_challenge(value[0])
        if captcha_settings.CAPTCHA_TEST_MODE and response == "passed":
            return value
        if stored is None or stored[0] != response or not stored[1]:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return value


def _burn_challenge(key: str) -> tuple[str, bool] | None:
    """Delete the challenge: its answer and whether it had not expired, or None."""
    table = CaptchaStore._meta.db_table
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE hashkey = %s RETURNING response, expiration > %s",
            [key, now],
        )
        return cursor.fetchone()


def language_choices() -> list[tuple[str, str]]:
    """Each language in its own name: English, 繁體中文."""
    return [(code, get_language_info(code)["name_local"]) for code, _name in settings.LANGUAGES]


class QueryForm(forms.Form):
    language = forms.ChoiceField(
        label=_("Language"), choices=language_choices, widget=forms.RadioSelect
    )
    email = forms.CharField(
        label=_("Email"),
        max_length=320,
        strip=False,
        help_text=_(
            "Your complete address, e.g. username@cs.nthu.edu.tw. "
            "The report is sent to this mailbox, and only to it."
        ),
        # A text input, not type=email: the server normalizes and explains every refusal
        # in the page's language, also for addresses a browser would reject on its own.
        widget=forms.TextInput(
            attrs={
                "autocomplete": "email",
                "spellcheck": "false",
                "autocapitalize": "off",
                "inputmode": "email",
            }
        ),
    )
    begin = forms.DateField(
        label=_("Begin"), widget=DateInput, input_formats=["%Y-%m-%d", "%Y/%m/%d"]
    )
    end = forms.DateField(label=_("End"), widget=DateInput, input_formats=["%Y-%m-%d", "%Y/%m/%d"])
    captcha = OnceCaptchaField(
        label=_("Verification code"),
        widget=CaptchaInput,
        help_text=_("Type the six digits shown in the image."),
        error_messages={
            "invalid": _(
                "The verification code was wrong or has expired; "
                "a new one is shown, please type it."
            ),
            "required": _("Type the verification code."),
        },
    )
    token = forms.CharField(widget=forms.HiddenInput, required=False)

    @property
    def retention_days(self) -> int:
        return settings.SMTPLOG_RETENTION_DAYS

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        first, last = retention_window()
        for name in ("begin", "end"):
            self.fields[name].widget.attrs.update(min=first.isoformat(), max=last.isoformat())
        if not self.is_bound:
            begin, end = default_range()
            self.initial.setdefault("begin", begin)
            self.initial.setdefault("end", end)
            self.initial.setdefault("token", new_token())

    @classmethod
    def retyped(cls, data) -> QueryForm:
        """An unbound form showing what was typed, with a new captcha (the "Show another
        image" button, without script): nothing checked, nothing recorded."""
        return cls(initial={name: data[name] for name in RETYPED if name in data})

    def clean_email(self) -> str:
        address = normalize_email(self.cleaned_data["email"])
        validate_campus_address(address)
        return address

    def clean_token(self) -> str:
        """The page's token; a page without a good one gets its own (its answer's address)."""
        token = self.cleaned_data["token"]
        return token if TOKEN.fullmatch(token) else new_token()

    def _clean_day(self, name: str) -> dt.date:
        day = self.cleaned_data[name]
        first, last = retention_window()
        if not first <= day <= last:
            raise forms.ValidationError(
                _("Choose a day from %(first)s to %(last)s: records are kept for %(days)s days."),
                code="retention",
                params={
                    "first": first.strftime("%Y/%m/%d"),
                    "last": last.strftime("%Y/%m/%d"),
                    "days": settings.SMTPLOG_RETENTION_DAYS,
                },
            )
        return day

    def clean_begin(self) -> dt.date:
        return self._clean_day("begin")

    def clean_end(self) -> dt.date:
        return self._clean_day("end")

    def clean(self) -> dict:
        data = super().clean()
        begin, end = data.get("begin"), data.get("end")
        if begin and end and begin > end:
            self.add_error(
                "end",
                forms.ValidationError(
                    _("The end date must not be before the begin date."), code="order"
                ),
            )
        return data
