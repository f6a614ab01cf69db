"""What a sign-in page answers once django-axes has locked out a username and address."""

import math

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

# django-axes keeps the username in a column of 255 characters; Django's sign-in form does
# not refuse a longer one before it authenticates.
USERNAME_KEPT_CHARS = 255


def lockout_username(request: HttpRequest, credentials: dict | None) -> str | None:
    """The username a sign-in attempt is counted under (AXES_USERNAME_CALLABLE): the one
    given, cut to what axes can store, so that a 5,000-character name is an ordinary
    failure instead of a database error (a 500)."""
    if credentials:
        username = credentials.get("username")
    else:
        username = getattr(request, "data", request.POST).get("username")
    return None if username is None else str(username)[:USERNAME_KEPT_CHARS]


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
