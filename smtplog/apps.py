from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SmtplogConfig(AppConfig):
    name = "smtplog"
    verbose_name = _("Mail events")
