from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _

from alerts.views import dashboard_view

admin.site.site_header = _("SMTP Log Query System — staff")
admin.site.site_title = _("SMTP Log Query System")
admin.site.index_title = _("Outgoing relay mail records")
admin.site.index_template = "admin/alerts/index.html"  # links to the dashboard
# The app list is on the index: lists keep the sidebar's width for their columns.
admin.site.enable_nav_sidebar = False

urlpatterns = [
    path("", include("queries.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("captcha/", include("captcha.urls")),
    # Staff pages in the admin's look, before the admin's URLs (which would take them for
    # missing pages): the message trace, and the dashboard behind the admin's own login.
    path("admin/trace/", include("tracing.urls")),
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="dashboard"),
    path("admin/", admin.site.urls),
]
