"""Live baseline: a plain `websockets` server that broadcasts one pre-encoded top-10 frame.

    python bench/baselines/ws_broadcast.py --port P --body TOP10.json

Every WebSocket client gets a snapshot, then nothing until a trigger: `GET /trigger?round=R`
encodes one update frame (the same top-10 items as the service's, plus the round number so
the client can tell rounds apart) and hands it to `websockets.broadcast` for every client;
the HTTP answer follows. `GET /readyz` answers 200. What the service's fan-out is measured
against: the least a Python WebSocket server must do to tell N clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.http11 import Request, Response


class Broadcaster:
    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.clients: set[ServerConnection] = set()

    async def handler(self, ws: ServerConnection) -> None:
        self.clients.add(ws)
        try:
            await ws.send(json.dumps({"type": "snapshot", "limit": 10, "items": self.items}))
            await ws.wait_closed()
        finally:
            self.clients.discard(ws)

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path == "/readyz":
            return connection.respond(200, "ok\n")
        if url.path == "/trigger":
            round_ = int(parse_qs(url.query)["round"][0])
            frame = json.dumps({"type": "update", "round": round_, "items": self.items})
            broadcast(self.clients, frame)
            return connection.respond(200, "ok\n")
        return None


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True, help="a GET /leaderboard answer")
    args = parser.parse_args()
    app = Broadcaster(json.loads(args.body.read_bytes())["items"])
    server: Server
    async with serve(
        app.handler,
        "127.0.0.1",
        args.port,
        process_request=app.process_request,
        compression=None,  # as the service: per-message deflate off
        ping_interval=None,  # idle clients stay idle
        max_size=64 * 1024,
    ) as server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
