from django.urls import path

from queries import views

app_name = "queries"
urlpatterns = [
    path("", views.query_form, name="form"),
    path("answer/<slug:token>/", views.answer, name="answer"),
    path("help/", views.help_page, name="help"),
]
