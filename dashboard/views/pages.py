"""What the list and live pages share: their links, and how their live part refreshes."""

from urllib.parse import urlsplit

from django.utils.http import url_has_allowed_host_and_scheme


def local_link(url: str | None) -> str | None:
    """A paginator's absolute link as a path and query string, for this page's links."""
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


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
