"""OpenTelemetry tracing, optional: `pip install 'scoreboard[otel]'` and set the standard
`OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS`, ... as the SDK reads them;
`OTEL_SDK_DISABLED=true` turns it off). Without the extra or the endpoint nothing is traced and
nothing is paid: every hook checks `tracer is None` first.

Spans: one SERVER span per HTTP request (`api/middleware.py`, W3C `traceparent` honoured, named
`METHOD /route/template`), `group commit` around each batch's store write (attribute
`scoreboard.batch_size`; a root span of its own: one batch serves many requests), `redis <call>`
around every call of the Redis rank index, broker and limiter, and `fan-out` around each round
of live updates (`realtime/hub.py`).

The provider is the app's own (no global state); tests hand `create_app` one with an
in-memory exporter.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry.trace import SpanKind, Tracer

from scoreboard.aio import MethodProxy
from scoreboard.backends import Backends

# What the SDK reads; any of them set means "export".
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
SCOPE = "scoreboard"


def provider_from_environment() -> Any | None:
    """A TracerProvider exporting over OTLP/HTTP when an endpoint is configured and the
    `otel` extra is installed; otherwise None."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    if not any(os.environ.get(name) for name in ENDPOINT_VARIABLES):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:  # the endpoint is set but the extra is not installed
        import logging

        logging.getLogger(__name__).warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but the otel extra is not installed "
            "(pip install 'scoreboard[otel]'): not tracing"
        )
        return None
    service = os.environ.get("OTEL_SERVICE_NAME", "scoreboard")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def tracer_of(provider: Any | None) -> Tracer | None:
    return None if provider is None else provider.get_tracer(SCOPE)


class Traced(MethodProxy):
    """A backend whose every coroutine method call is a span `<prefix> <method>` (e.g.
    `redis apply_many`)."""

    def __init__(self, inner: Any, tracer: Tracer, prefix: str) -> None:
        super().__init__(inner)
        self._tracer = tracer
        self._prefix = prefix

    def _around(
        self, name: str, call: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        span_name = f"{self._prefix} {name}"
        tracer, system = self._tracer, self._prefix

        @functools.wraps(call)
        async def traced(*args: Any, **kwargs: Any) -> Any:
            with tracer.start_as_current_span(span_name, kind=SpanKind.CLIENT) as span:
                span.set_attribute("db.system", system)
                return await call(*args, **kwargs)

        return traced


class TracedStore(Traced):
    """The store, with `record_events` (the group commit's one call per batch) as a span
    `group commit` carrying the batch size; other calls pass through untraced."""

    def _around(
        self, name: str, call: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        if name != "record_events":
            return call
        tracer = self._tracer

        async def record_events(commands: Any) -> Any:
            with tracer.start_as_current_span("group commit") as span:
                span.set_attribute("scoreboard.batch_size", len(commands))
                return await call(commands)

        return record_events


def traced(backends: Backends, tracer: Tracer | None) -> Backends:
    """The backends with their spans: the store's group commit always, the rank index, broker
    and rate limiter when they are Redis (the in-process ones are function calls)."""
    if tracer is None:
        return backends
    import dataclasses

    wrapped = dataclasses.replace(backends, store=TracedStore(backends.store, tracer, "sql"))
    if backends.redis_ping is not None:
        wrapped = dataclasses.replace(
            wrapped,
            indexes=Traced(backends.indexes, tracer, "redis"),
            broker=Traced(backends.broker, tracer, "redis"),
            limiter=Traced(backends.limiter, tracer, "redis"),
        )
    return wrapped
