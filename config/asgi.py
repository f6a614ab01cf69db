"""The web process's application (Procfile ``web``: gunicorn with uvicorn workers).

Two kinds of request share the port. The event stream (GET /api/v1/tasks/events) stays
open for minutes: it goes to Django's ASGI handler, whose async answer holds no thread
while it waits (tasks_app/events.py). Every other request goes to Django's WSGI handler,
run on the event loop's thread one request at a time, as a sync gunicorn worker runs it,
on one persistent database connection (config/inline_wsgi.py). So streams cannot take the
API's place, and the API is run, and measured, as before.

``config.wsgi`` still serves everything under a WSGI server; the event stream then answers
with what changed so far and makes EventSource poll (tasks_app/apis/events.py).
"""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application
from django.urls import reverse
from uvicorn.server import Server

from config.inline_wsgi import InlineWSGI

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django's WSGI handler runs on the event loop's thread, one request at a time, never
# beside async code of its own (config/inline_wsgi.py): its check against that is lifted.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# Both set Django up; the settings and URL names are read once it is.
_asynchronous = get_asgi_application()
_synchronous = InlineWSGI(
    get_wsgi_application(),
    # The largest request: an upload at its limit, with its multipart framing.
    max_body_bytes=max(settings.DOCUMENTS_MAX_UPLOAD_BYTES, settings.API_MAX_JSON_BYTES)
    + 64 * 1024,
)
# With and without the trailing slash, as every API path (api/middleware.py).
_STREAM_PATHS = frozenset(
    path
    for name in ("task-events",)
    for path in (reverse(name).rstrip("/"), reverse(name).rstrip("/") + "/")
)


def _end_streams_then_exit(server, sig, frame):
    # Uvicorn's graceful shutdown waits for every open response to end; an event stream
    # would not before gunicorn's graceful timeout killed the worker (30 s). It is told to
    # end first, and its client reconnects to a process that is not stopping.
    from tasks_app.events import end_all_streams

    end_all_streams()
    _uvicorn_handle_exit(server, sig, frame)


# The signal handler uvicorn installs (SIGTERM, SIGINT) when it starts serving, after this
# module is imported; there is no hook for it otherwise (sse-starlette does the same).
_uvicorn_handle_exit = Server.handle_exit
Server.handle_exit = _end_streams_then_exit


async def application(scope, receive, send):
    if scope["type"] == "http" and scope["path"] in _STREAM_PATHS:
        await _asynchronous(scope, receive, send)
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)
    else:
        await _synchronous(scope, receive, send)


async def _lifespan(receive, send) -> None:
    # Nothing to start or stop; answered so that uvicorn does not log it as unsupported.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
