"""A fault-injecting HTTP proxy on 127.0.0.1 in front of a real mlflow server.

It forwards every request unchanged, except those a `Fault` matches, for as many times as the
fault says:

- ``"503"``: answers 503 Service Unavailable without forwarding (a busy gateway);
- ``"drop"``: closes the connection without forwarding (the request never arrived);
- ``"forward-then-502"``: forwards, throws the server's answer away and answers 502 (the server
  did it; a gateway lost the answer);
- ``"forward-then-drop"``: forwards, then closes the connection without answering (the server
  did it; the answer was lost on the way back).

`proxy.hits` counts the requests each fault caught, so a test can tell the fault was injected.
"""

from __future__ import annotations

import http.client
import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

ACTIONS = ("503", "drop", "forward-then-502", "forward-then-drop")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass
class Fault:
    """Requests to `path` (and, if given, with these query or JSON body fields) get `action`."""

    method: str
    path: str
    action: str
    fields: Mapping[str, str] = field(default_factory=dict)
    times: int = 1
    hits: int = 0

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}; one of {ACTIONS}")

    def matches(self, method: str, path: str, values: Mapping[str, Any]) -> bool:
        if self.hits >= self.times or method != self.method or path != self.path:
            return False
        return all(str(values.get(k)) == v for k, v in self.fields.items())


class FaultProxy:
    """`with FaultProxy(upstream_url) as proxy:` serves on `proxy.url` until the block ends."""

    def __init__(self, upstream: str) -> None:
        parts = urllib.parse.urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def fail(self, method: str, path: str, action: str, times: int = 1, **fields: str) -> Fault:
        """Inject `action` into the next `times` requests matching `method`, `path`, `fields`."""
        fault = Fault(method, path, action, fields, times)
        with self._lock:
            self.faults.append(fault)
        return fault

    def _take(self, method: str, path: str, values: Mapping[str, Any]) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path, values):
                    fault.hits += 1
                    return fault
        return None

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: FaultProxy

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the test's output is what matters

    def do_GET(self) -> None:
        self._proxy()

    def do_POST(self) -> None:
        self._proxy()

    def do_PATCH(self) -> None:
        self._proxy()

    def do_PUT(self) -> None:
        self._proxy()

    def do_DELETE(self) -> None:
        self._proxy()

    def _proxy(self) -> None:
        body = self._body()
        parts = urllib.parse.urlsplit(self.path)
        values: dict[str, Any] = dict(urllib.parse.parse_qsl(parts.query))
        if body and self.headers.get("Content-Type", "").startswith("application/json"):
            try:
                loaded = json.loads(body)
            except ValueError:
                loaded = None
            if isinstance(loaded, dict):
                values.update(loaded)
        fault = self.owner._take(self.command, parts.path, values)
        action = fault.action if fault is not None else None
        if action == "503":
            self._answer(503, b'{"error_code": "TEMPORARILY_UNAVAILABLE"}')
            return
        if action == "drop":
            self.close_connection = True
            return
        status, headers, answer = self._forward(body)
        if action == "forward-then-502":
            self._answer(502, b"bad gateway")
        elif action == "forward-then-drop":
            self.close_connection = True
        else:
            self._answer(status, answer, headers)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return b"".join(self._chunks())
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _chunks(self) -> Iterator[bytes]:
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return
            yield self.rfile.read(size)
            self.rfile.readline()

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(
            self.owner.upstream_host, self.owner.upstream_port, timeout=120
        )
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            return response.status, kept, answer
        finally:
            connection.close()

    def _answer(
        self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None
    ) -> None:
        self.send_response(status)
        for key, value in headers or [("Content-Type", "application/json")]:
            if key.lower() not in ("content-length", "server", "date"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
