"""OpenTelemetry tracing (`scoreboard.tracing`): spans for HTTP, the group commit, Redis and the
fan-out, with the SDK's in-memory exporter; and the OTLP/HTTP export the OTEL_* variables turn
on, received by an HTTP server of the test's own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from tests.conftest import lifespan

from scoreboard.app import create_app
from scoreboard.config import Settings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tracer_provider, exporter


async def activity(app: Any) -> None:
    async with lifespan(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            body = {"username": "tracy", "password": "correct horse"}
            assert (await http.post("/api/v1/auth/register", json=body)).status_code == 201
            token = (await http.post("/api/v1/auth/login", json=body)).json()["access_token"]
            r = await http.post(
                "/api/v1/scores/events",
                json={"action_type": "TASK_COMPLETED"},
                headers={"Authorization": f"Bearer {token}", "traceparent": TRACEPARENT},
            )
            assert r.status_code == 201
            assert (await http.get("/api/v1/leaderboard")).status_code == 200
            await app.state.services.hub.fan_out("global")


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


async def test_http_commit_and_fan_out_spans_embedded(tmp_path: Path) -> None:
    tracer_provider, exporter = provider()
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")  # type: ignore[call-arg]
    await activity(create_app(settings, tracer_provider=tracer_provider))
    spans = exporter.get_finished_spans()
    (post,) = named(spans, "POST /api/v1/scores/events")
    assert post.kind is SpanKind.SERVER
    assert post.attributes is not None and post.attributes["http.response.status_code"] == 201
    assert post.attributes["http.route"] == "/api/v1/scores/events"
    assert f"{post.context.trace_id:032x}" == TRACE_ID  # the caller's trace continues
    commits = named(spans, "group commit")
    assert commits and all(
        s.attributes and s.attributes["scoreboard.batch_size"] >= 1 for s in commits
    )
    # A batch serves many requests: its span is a root of its own, not any one request's child.
    assert all(s.parent is None for s in commits)
    assert named(spans, "GET /api/v1/leaderboard")
    assert named(spans, "fan-out")
    assert not [s for s in spans if s.name.startswith("redis ")]  # embedded: no Redis


async def test_redis_calls_are_spans_in_scaled_mode(
    tmp_path: Path, pg_database_url: str, redis_url: str, redis_prefix: str
) -> None:
    tracer_provider, exporter = provider()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=pg_database_url,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
    )
    await activity(create_app(settings, tracer_provider=tracer_provider))
    names = {span.name for span in exporter.get_finished_spans()}
    redis = {name for name in names if name.startswith("redis ")}
    assert "redis charge" in redis or "redis hit" in redis  # the rate limits
    assert any(name.startswith("redis apply") for name in redis), redis  # the rank index
    assert "redis publish" in redis  # the change notice
    assert "group commit" in names


class Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, str, int]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        self.rfile.read(length)
        Receiver.received.append((self.path, self.headers.get("content-type", ""), length))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def collector() -> Iterator[str]:
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_otel_variables_export_over_otlp_http(
    tmp_path: Path, collector: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "scoreboard-test")
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")  # type: ignore[call-arg]
    await activity(create_app(settings))  # the provider comes from the environment
    assert Receiver.received, "no spans were exported"
    path, content_type, length = Receiver.received[0]
    assert path == "/v1/traces" and content_type == "application/x-protobuf" and length > 0


async def test_no_endpoint_no_tracing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")  # type: ignore[call-arg]
    app = create_app(settings)
    assert app.state.tracer is None
