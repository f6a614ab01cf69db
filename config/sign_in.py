"""What a sign-in page answers once django-axes has locked out a username and address."""

import math

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def lockout_response(request: HttpRequest, original_response, credentials) -> HttpResponse:
    """429, with the page saying how long to wait and Retry-After saying it to programs.

    django-axes calls this (AXES_LOCKOUT_CALLABLE) for the dashboard's and the admin's
    sign-in alike; its own page has no Retry-After and names no time to wait.
    """
    minutes = math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
    response = render(
        request,
        "registration/locked_out.html",
        {"failure_limit": settings.AXES_FAILURE_LIMIT, "minutes": minutes},
        status=429,
    )
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response
