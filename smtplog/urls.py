from captcha.urls import urlpatterns as captcha_urlpatterns
from django.contrib import admin
from django.urls import URLPattern, include, path
from django.utils.translation import gettext_lazy as _

from alerts.views import dashboard_view
from queries.views import captcha_guard
from smtplog import views

admin.site.site_header = _("SMTP Log Query System — staff")
admin.site.site_title = _("SMTP Log Query System")
admin.site.index_title = _("Outgoing relay mail records")
admin.site.index_template = "admin/alerts/index.html"  # links to the dashboard
# The app list is on the index: lists keep the sidebar's width for their columns.
admin.site.enable_nav_sidebar = False

handler500 = "smtplog.views.server_error"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("", include("queries.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    # The captcha library's own URLs, each guarded: campus clients only, and bounded.
    path(
        "captcha/",
        include(
            [
                URLPattern(p.pattern, captcha_guard(p.callback), p.default_args, p.name)
                for p in captcha_urlpatterns
            ]
        ),
    ),
    # Staff pages in the admin's look, before the admin's URLs (which would take them for
    # missing pages): the message trace, and the dashboard behind the admin's own login.
    path("admin/trace/", include("tracing.urls")),
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="dashboard"),
    path("admin/", admin.site.urls),
]
