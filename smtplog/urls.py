from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _

admin.site.site_header = _("SMTP Log Query System — staff")
admin.site.site_title = _("SMTP Log Query System")
admin.site.index_title = _("Outgoing relay mail records")

urlpatterns = [
    path("", include("queries.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("captcha/", include("captcha.urls")),
    path("admin/trace/", include("tracing.urls")),  # staff pages in the admin's look
    path("admin/", admin.site.urls),
]
