"""A real HTTP server on 127.0.0.1 whose paths each play one kind of web server.

Nothing here reaches beyond the loopback interface. Handlers that stall wait on the
server's ``stopping`` event, so shutting the server down never waits for a sleep.
"""

import gzip
import ssl
import threading
import zlib
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PAGE = b"<html><head><title>Hello</title></head><body>Hello, world.</body></html>"
BOMB_SIZE = 10 * 1024 * 1024  # decompressed; the compressed body is about 10 KB


@cache
def bomb(encoding: str) -> bytes:
    zeros = bytes(BOMB_SIZE)
    return gzip.compress(zeros) if encoding == "gzip" else zlib.compress(zeros, 9)


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, ssl_context: ssl.SSLContext | None = None):
        super().__init__(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if ssl_context is not None:
            self.socket = ssl_context.wrap_socket(self.socket, server_side=True)
            self.scheme = "https"
        self.stopping = threading.Event()
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)

    def reset(self) -> None:
        self.connections = 0
        self.requests.clear()

    def process_request(self, request, client_address):
        self.connections += 1
        super().process_request(request, client_address)

    def handle_error(self, request, client_address):
        pass  # clients that hang up early are the point of several tests


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LocalServer

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        url = urlsplit(self.path)
        self.query = {key: values[0] for key, values in parse_qs(url.query).items()}
        self.server.requests.append((self.path, dict(self.headers)))
        route, _, rest = url.path.strip("/").partition("/")
        getattr(self, f"route_{route.replace('-', '_')}", self.route_page)(rest)

    def reply(self, status=200, body=b"", headers=None, *, length=None):
        self.send_response(status)
        headers = {"Content-Type": "text/html; charset=utf-8", **(headers or {})}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def stall(self, seconds: float) -> bool:
        """Wait; False once the server is stopping."""
        return not self.server.stopping.wait(seconds)

    def drip(self, byte: bytes) -> None:
        """One byte every 50 ms, for 5 s at most: a fetch that waits for it all fails its
        test instead of hanging the suite."""
        for _ in range(100):
            if not self.stall(0.05):
                return
            self.wfile.write(byte)

    # Pages

    def route_page(self, rest):
        self.reply(body=PAGE, headers={"Content-Type": "text/html; charset=ISO-8859-1"})

    def route_echo_host(self, rest):
        self.reply(body=self.headers["Host"].encode(), headers={"Content-Type": "text/plain"})

    def route_meta(self, rest):
        headers = {}
        if "ct" in self.query:
            headers["Content-Type"] = self.query["ct"]
        if "cd" in self.query:
            headers["Content-Disposition"] = self.query["cd"]
        self.reply(body=PAGE, headers=headers)

    def route_gzip_page(self, rest):
        self.reply(body=gzip.compress(PAGE), headers={"Content-Encoding": "gzip"})

    def route_brotli_page(self, rest):
        self.reply(body=b"\x0b\x02\x80hello\x03", headers={"Content-Encoding": "br"})

    def route_status(self, rest):
        self.reply(int(rest), b"")

    # Redirects

    def redirect(self, location, status=302):
        self.reply(status, b"", {"Location": location})

    def route_redirect(self, rest):
        self.redirect("/page")

    def route_chain(self, rest):  # /chain/3 -> /chain/2 -> ... -> /chain/0 -> /page
        hops = int(rest)
        self.redirect(f"{hops - 1}" if hops > 0 else "/page", status=307)

    def route_loop(self, rest):
        self.redirect("/loop")

    def route_to_metadata(self, rest):
        self.redirect("http://169.254.169.254/latest/meta-data/")

    def route_to_file(self, rest):
        self.redirect("file:///etc/passwd")

    def route_to(self, rest):
        self.redirect(self.query["url"])

    def route_no_location(self, rest):
        self.reply(302, b"")

    # Bodies that break the rules

    def route_huge_chunked(self, rest):
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"x" * 65536
        for _ in range(160):  # 10 MB, unless the client hangs up first
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def route_huge_until_close(self, rest):
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        for _ in range(160):
            self.wfile.write(b"x" * 65536)

    def route_declared_huge(self, rest):
        self.reply(body=b"x" * 10, length=100_000_000)
        self.close_connection = True

    def route_short_length(self, rest):  # says 100 bytes, sends 5000
        self.reply(body=b"x" * 5000, length=100)
        self.close_connection = True

    def route_truncated(self, rest):  # says 5000 bytes, sends 100 and hangs up
        self.reply(body=b"x" * 100, length=5000)
        self.close_connection = True

    def route_bomb(self, rest):
        self.reply(body=bomb(rest), headers={"Content-Encoding": rest})

    def route_chunked_bomb(self, rest):
        self.send_response(200)
        self.send_header("Content-Encoding", rest)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        body = bomb(rest)
        self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))

    # Slow servers

    def route_slow_start(self, rest):
        if self.stall(5):
            self.reply(body=PAGE)

    def route_drip_body(self, rest):
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.drip(b"x")

    def route_drip_headers(self, rest):
        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        self.drip(b"x")
