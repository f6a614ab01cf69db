"""Django's WSGI handler, run on the ASGI server's own thread, one request at a time.

The web process's uvicorn workers hold event streams on their event loop; every other
request is Django's synchronous stack. Run on a thread of its own (a2wsgi, Django's ASGI
handler), each request's database round trips came back to a thread that had to win the
interpreter lock from the event loop first: a submit, five round trips, took twice as
long under load. Run here, on the loop's thread, a request holds the loop while Django
works, as a sync gunicorn worker holds its process: one request at a time (``_turn``), on
the thread's one persistent database connection, with the streams waiting meanwhile (for
the milliseconds a request takes). Django's check against synchronous database calls
from async code is lifted for this process (config/asgi.py): requests never overlap, and
the stream code reads the database on threads of its own.

Django keeps its database connections in context variables (asgiref's Local), and the
server runs each request in a task with a context of its own: every request would open a
connection of its own and leave it for the garbage collector. Django's part of each
request runs in one context kept for the process instead, as on a sync worker's thread.

A request's body is read before its turn, into memory and past 1 MiB onto disk, so a slow
client holds up nobody; one larger than ``max_body_bytes`` is answered 413 as soon as
that is known, before it is read.
"""

import asyncio
import contextvars
import json
from tempfile import SpooledTemporaryFile

from a2wsgi.wsgi import build_environ

SPOOL_IN_MEMORY_BYTES = 1024 * 1024


class InlineWSGI:
    def __init__(self, app, *, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._turn: asyncio.Lock | None = None
        self._django_context = contextvars.copy_context()

    async def __call__(self, scope, receive, send) -> None:
        body = await self._read_body(scope, receive, send)
        if body is None:
            return
        if self._turn is None:
            self._turn = asyncio.Lock()
        try:
            async with self._turn:
                await self._respond(scope, body, send)
        finally:
            body.close()

    async def _read_body(self, scope, receive, send) -> SpooledTemporaryFile | None:
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(send)
            return None
        body = SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                body.close()
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                body.close()
                await self._too_large(send)
                return None
            body.write(chunk)
            more = message.get("more_body", False)
        body.seek(0)
        return body

    async def _too_large(self, send) -> None:
        detail = f"The request body is larger than the {self.max_body_bytes // 2**20} MB allowed."
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps({"detail": detail}).encode()})

    async def _respond(self, scope, body, send) -> None:
        environ = build_environ(scope, body)
        environ["wsgi.multithread"] = False
        started: list = []
        written: list[bytes] = []  # by the WSGI write() callable, before the iterable's

        def start_response(status, headers, exc_info=None):
            started[:] = [status, headers]
            return written.append

        in_context = self._django_context.run
        result = in_context(self.app, environ, start_response)
        try:
            chunks = in_context(iter, result)
            first = in_context(next, chunks, b"")  # Django has called start_response by now
            status, headers = started
            await send(
                {
                    "type": "http.response.start",
                    "status": int(status.split(" ", 1)[0]),
                    "headers": [
                        (name.lower().encode("latin1"), value.encode("latin1"))
                        for name, value in headers
                    ],
                }
            )
            for chunk in (*written, first):
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            while (chunk := in_context(next, chunks, None)) is not None:
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                in_context(close)  # Django's request_finished: its connections' upkeep
