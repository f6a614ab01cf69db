"""What the list and live pages share: their cursor pages and links, and how their live
part refreshes."""

from urllib.parse import urlsplit

from django.http import Http404
from django.utils.http import url_has_allowed_host_and_scheme
from rest_framework.exceptions import NotFound
from rest_framework.request import Request

from api.pagination import NewestFirstPagination


def local_link(url: str | None) -> str | None:
    """A paginator's absolute link as a path and query string, for this page's links."""
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def cursor_page(request, queryset, *, page_size: int = 25) -> tuple[list, dict]:
    """One page of ``queryset``, newest first, at the query string's cursor (the API's
    cursor pages), and the links to the newer and older pages (``_pages_nav.html``'s
    ``previous_link`` and ``next_link``); a cursor that is not valid is a 404."""
    paginator = NewestFirstPagination()
    paginator.page_size = page_size
    try:
        page = paginator.paginate_queryset(queryset, Request(request))
    except NotFound:
        raise Http404("This page of the list does not exist (the cursor is not valid).") from None
    return page, {
        "previous_link": local_link(paginator.get_previous_link()),
        "next_link": local_link(paginator.get_next_link()),
    }


def live_updates(*, active: bool, own: bool, since: str) -> dict:
    """How the page's live part refreshes: ``live`` is "stream", "poll" or None (nothing
    moves), and ``events_position`` where the stream starts (before the page was read, so
    that nothing changed since is missed)."""
    if not active:
        return {"live": None}
    return {"live": "stream" if own else "poll", "events_position": since}


def back_or(request, default: str) -> str:
    """Where a posted form asks to go back to (its ``next``), if that is a page of this
    service; else ``default``."""
    back = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return back
    return default
