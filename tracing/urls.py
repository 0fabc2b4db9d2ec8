from django.urls import path

from tracing import views

app_name = "tracing"
urlpatterns = [
    path("", views.search_page, name="search"),
    path("export/", views.export_csv, name="export"),
    path("message/<int:pk>/", views.message_page, name="message"),
    path("message/<int:pk>/json/", views.message_json, name="message_json"),
]
