"""Request middleware of the whole site."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.urls import reverse

from queries.campus import client_ip, is_staff_network


class StaffNetworkMiddleware:
    """The admin (login page included) answers only clients in SMTPLOG_STAFF_NETWORKS.

    nginx refuses them too (deploy/nginx); this holds whatever proxy is in front.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith(reverse("admin:index")) and not is_staff_network(
            client_ip(request)
        ):
            raise PermissionDenied("the admin is open to staff networks only")
        return self.get_response(request)
