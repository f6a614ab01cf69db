"""config/inline_wsgi.py: a WSGI app run on the ASGI server's thread, one request at a time."""

import asyncio
import contextvars

from config.inline_wsgi import InlineWSGI

REQUEST_NUMBER = contextvars.ContextVar("request_number", default=0)


def scope(path: str = "/", headers=()) -> dict:
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": b"",
        "http_version": "1.1",
        "headers": list(headers),
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }


def call(app, request_scope: dict, body_chunks: list[bytes]) -> list[dict]:
    """The ASGI messages ``app`` sends for a request whose body comes in ``body_chunks``."""
    sent: list[dict] = []
    incoming = [
        {"type": "http.request", "body": chunk, "more_body": number < len(body_chunks) - 1}
        for number, chunk in enumerate(body_chunks)
    ]

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(request_scope, receive, send))
    return sent


def echo_app(environ, start_response):
    """Counts its requests in a context variable, as Django keeps its connections."""
    REQUEST_NUMBER.set(REQUEST_NUMBER.get() + 1)
    body = environ["wsgi.input"].read()
    headers = [("Content-Type", "text/plain"), ("X-Number", str(REQUEST_NUMBER.get()))]
    start_response("201 Created", headers)
    return [b"got ", body, b"", b"!"]


def test_a_request_gets_its_body_and_its_answer_in_chunks():
    sent = call(InlineWSGI(echo_app, max_body_bytes=100), scope(), [b"ab", b"cd"])

    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 201
    assert (b"content-type", b"text/plain") in sent[0]["headers"]
    assert b"".join(message.get("body", b"") for message in sent[1:]) == b"got abcd!"
    assert sent[-1].get("more_body", False) is False


def test_requests_share_one_context_as_a_sync_workers_thread_would():
    app = InlineWSGI(echo_app, max_body_bytes=100)

    numbers = [dict(call(app, scope(), [b""])[0]["headers"])[b"x-number"] for _ in range(3)]

    assert numbers == [b"1", b"2", b"3"]


def test_a_body_declared_past_the_limit_is_a_413_before_it_is_read():
    called = []

    def app(environ, start_response):
        called.append(True)
        return echo_app(environ, start_response)

    sent = call(InlineWSGI(app, max_body_bytes=10), scope(headers=[(b"content-length", b"11")]), [])

    assert sent[0]["status"] == 413
    assert b"larger than" in sent[1]["body"]
    assert called == []


def test_a_body_that_grows_past_the_limit_unannounced_is_a_413():
    sent = call(InlineWSGI(echo_app, max_body_bytes=10), scope(), [b"123456", b"789012"])

    assert sent[0]["status"] == 413


def test_a_client_gone_before_its_body_ended_gets_nothing():
    sent = []

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(InlineWSGI(echo_app, max_body_bytes=10)(scope(), receive, send))

    assert sent == []


def test_the_answer_is_closed_after_it_was_sent():
    closed = []

    class Answer(list):
        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [])
        return Answer([b"x"])

    call(InlineWSGI(app, max_body_bytes=10), scope(), [b""])

    assert closed == [True]


def test_what_the_write_callable_wrote_comes_before_the_iterables_chunks():
    def app(environ, start_response):
        write = start_response("200 OK", [])
        write(b"written ")
        return [b"returned"]

    sent = call(InlineWSGI(app, max_body_bytes=10), scope(), [b""])

    assert b"".join(message.get("body", b"") for message in sent[1:]) == b"written returned"
