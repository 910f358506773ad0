"""A webhook receiver the tests start: a real HTTP server on a free port (stdlib
`http.server` in a thread), which checks every signature the way docs/WEBHOOKS.md tells a
receiver to, answers 500 to the first `fail_first` attempts of each webhook id, and keeps
what it received."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def signature_ok(secret: str, header: str, body: bytes) -> bool:
    """Written from the docs, not from the service's code."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    if "t" not in parts or "v1" not in parts:
        return False
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), parts["v1"])


class Receiver:
    def __init__(self, secret: str, fail_first: int = 0) -> None:
        self.secret = secret
        self.fail_first = fail_first
        self.attempts: Counter[str] = Counter()  # webhook id -> attempts seen
        self.delivered: list[dict[str, Any]] = []  # payloads answered 2xx, in order
        self.bad_signatures = 0
        self.lock = threading.Lock()
        self.url = ""

    def handle(self, headers: Any, body: bytes) -> int:
        with self.lock:
            if not signature_ok(self.secret, headers.get("Scoreboard-Signature", ""), body):
                self.bad_signatures += 1
                return 401
            payload = json.loads(body)
            self.attempts[payload["id"]] += 1
            if self.attempts[payload["id"]] <= self.fail_first:
                return 500
            self.delivered.append(payload)
            return 204

    def of_type(self, type: str) -> list[dict[str, Any]]:
        with self.lock:
            return [p for p in self.delivered if p["type"] == type]

    async def wait_for(self, done: Callable[[], bool], seconds: float = 20.0) -> None:
        """Until `done()` (a deadline, not a timing: the check is what the test asserts)."""
        for _ in range(int(seconds / 0.02)):
            if done():
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"not done within {seconds}s: {self.delivered}")


@contextmanager
def receiving(secret: str, fail_first: int = 0) -> Iterator[Receiver]:
    receiver = Receiver(secret, fail_first)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(receiver.handle(self.headers, body))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # workers send up to 16 at once each: room in the backlog
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
