"""A webhook receiver on loopback for the tests: it keeps every request it gets and
answers as the test tells it (``answer(request_number_for_this_id, headers) -> (status,
extra headers, delay seconds)``)."""

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict
    body: str


@dataclass
class Receiver:
    answer: object = None
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the standard library's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                with receiver.lock:
                    received = Received(self.path, dict(self.headers), body)
                    receiver.requests.append(received)
                    seen = sum(
                        1
                        for r in receiver.requests
                        if r.headers.get("webhook-id") == received.headers.get("webhook-id")
                    )
                status, headers, delay = (
                    receiver.answer(seen, received) if receiver.answer else (200, {}, 0)
                )
                if delay:
                    threading.Event().wait(delay)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a sender that gave up on a slow answer closed the connection

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def ids(self) -> set[str]:
        with self.lock:
            return {r.headers.get("webhook-id") for r in self.requests}
