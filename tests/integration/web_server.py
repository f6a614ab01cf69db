"""A small web server for URL ingestion tests, on 127.0.0.2 (which tests allow-list)."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.2"  # loopback, but not 127.0.0.1: the allow-list names this address only


class LocalWebServer:
    def __init__(self):
        self.pages: dict[str, tuple[str, bytes]] = {}
        self.redirects: dict[str, str] = {}
        # path -> how many more requests answer 503 before the page is served
        self.unavailable: dict[str, int] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if server.unavailable.get(self.path, 0) > 0:
                    server.unavailable[self.path] -= 1
                    self.send_error(503)
                elif self.path in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[self.path])
                    self.end_headers()
                elif self.path in server.pages:
                    content_type, body = server.pages[self.path]
                    self.send_response(200)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_error(404)

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer((HOST, 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self._httpd.server_address[1]}{path}"

    def __enter__(self) -> "LocalWebServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
