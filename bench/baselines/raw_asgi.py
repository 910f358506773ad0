"""Read baselines on uvicorn: the same top-10 bytes the service sends, without the service.

    python bench/baselines/raw_asgi.py --port P --body FILE [--app raw|fastapi-bytes|fastapi-dict]

`raw`: a bare ASGI callable answering every request with the pre-encoded body (what the
hardware, uvicorn and httptools allow). `fastapi-bytes`: a FastAPI route returning the same
pre-encoded bytes in a `Response`. `fastapi-dict`: a FastAPI route returning the decoded body
as a dict (FastAPI validates and serializes it per request). uvicorn runs as `scoreboard
serve` runs it (default loop and HTTP implementation, log level warning).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import uvicorn


class RawTop:
    """ASGI app: one pre-encoded body for every HTTP request, lifespan acknowledged."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


def fastapi_app(body: bytes, as_dict: bool) -> Any:
    from fastapi import FastAPI, Response

    app = FastAPI()
    decoded = json.loads(body)
    if as_dict:

        @app.get("/api/v1/leaderboard")
        async def top_dict() -> dict[str, Any]:
            return dict(decoded)

    else:

        @app.get("/api/v1/leaderboard")
        async def top_bytes() -> Response:
            return Response(content=body, media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--app", choices=("raw", "fastapi-bytes", "fastapi-dict"), default="raw")
    args = parser.parse_args()
    body = args.body.read_bytes()
    app = RawTop(body) if args.app == "raw" else fastapi_app(body, args.app == "fastapi-dict")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
