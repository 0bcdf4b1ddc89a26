"""A small HTTP server on 127.0.0.1 for download tests: serves one payload, with the failures real servers show."""

from __future__ import annotations

import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class PayloadServer(ThreadingHTTPServer):
    """Serves `payload` at every path, honouring `Range: bytes=N-`; the attributes below switch on failures."""

    daemon_threads = True  # a stalled handler must never keep the test process alive

    def __init__(self, payload: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _PayloadHandler)
        self.payload = payload
        self.content_type = "application/octet-stream"
        self.honour_range = True  # False: answer every request with 200 and the whole payload, like some mirrors
        self.status: int | None = None  # answer every request with this error status (404, ...)
        # One fault per response, in order: ("close", at) ends the body early with a clean close, ("reset", at) with a
        # TCP reset, ("stall", at) stops sending until the test ends; `at` is a byte offset into the payload.
        self.faults: list[tuple[str, int]] = []
        self.range_headers: list[str | None] = []  # the Range header of every request, None where absent
        self.handler_errors: list[BaseException] = []  # unexpected errors in the handler (not client hang-ups)
        self.release = threading.Event()  # set at teardown to end stalls
        self.stall_s = 10.0  # how long a stall lasts at most (then the connection is closed)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/weights.bin"

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError):  # a client that hung up (Ctrl-C test, timeout) is expected
            self.handler_errors.append(error)


class _PayloadHandler(BaseHTTPRequestHandler):
    server: PayloadServer

    def do_GET(self) -> None:
        server, body = self.server, self.server.payload
        range_header = self.headers.get("Range")
        server.range_headers.append(range_header)
        if server.status is not None:
            self.send_error(server.status)
            return
        start = 0
        if range_header and server.honour_range:
            start = int(range_header.removeprefix("bytes=").removesuffix("-"))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", self.server.content_type)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        fault, at = server.faults.pop(0) if server.faults else ("", len(body))
        self.wfile.write(body[start : max(start, at)])
        self.wfile.flush()
        if fault == "stall":
            server.release.wait(timeout=server.stall_s)
        if fault == "reset":  # SO_LINGER 0: close() sends RST, the client sees ECONNRESET
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        self.close_connection = True

    def log_message(self, format: str, *args) -> None:  # keep test output clean
        pass


def closed_port_url() -> tuple[socket.socket, str]:
    """A URL on 127.0.0.1 that refuses connections: a bound, non-listening socket (close it after the test)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}/weights.bin"


def silent_port_url() -> tuple[socket.socket, str]:
    """A URL on 127.0.0.1 whose server takes the connection and never answers: a listening socket that never accepts
    (the system completes the handshake for it). Close it after the test."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}/weights.bin"


UNKNOWN_HOST_URL = "http://vgg19-weights.invalid/weights.h5"  # .invalid is reserved: no such host, anywhere
