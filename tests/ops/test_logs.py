"""scoreboard.logs: the formats, the request id on every line, rate-limited backend warnings."""

from __future__ import annotations

import io
import logging
import logging.config

import orjson
import pytest

from scoreboard import logs


def capture(fmt: str) -> tuple[io.StringIO, logging.Logger]:
    config = logs.logging_config("info", fmt)
    stream = io.StringIO()
    config["handlers"]["main"]["stream"] = stream
    logging.config.dictConfig(config)
    return stream, logging.getLogger("scoreboard.test")


def test_json_lines_carry_the_request_id() -> None:
    stream, log = capture("json")
    token = logs.REQUEST_ID.set("abc-123")
    try:
        log.info("hello %s", "world")
        logging.getLogger("uvicorn.access").info('%s - "GET / HTTP/1.1" %d', "1.2.3.4", 200)
    finally:
        logs.REQUEST_ID.reset(token)
    log.warning("outside")
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["message"] == "hello world" and lines[0]["request_id"] == "abc-123"
    assert lines[0]["level"] == "info" and lines[0]["logger"] == "scoreboard.test"
    assert lines[1]["logger"] == "uvicorn.access" and lines[1]["request_id"] == "abc-123"
    assert "request_id" not in lines[2]
    assert lines[0]["time"].endswith("Z")


def test_text_lines_are_readable_with_the_request_id() -> None:
    stream, log = capture("text")
    token = logs.REQUEST_ID.set("r1")
    try:
        log.info("hello")
    finally:
        logs.REQUEST_ID.reset(token)
    line = stream.getvalue().strip()
    assert line.endswith("INFO scoreboard.test [req=r1]: hello")


def test_alembic_info_is_quiet() -> None:
    stream, _ = capture("text")
    logging.getLogger("alembic.runtime.plugins").info("setup plugin x")
    logging.getLogger("alembic.runtime.migration").warning("a real warning")
    assert "setup plugin" not in stream.getvalue()
    assert "a real warning" in stream.getvalue()


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text, json"):
        logs.logging_config("info", "xml")


def test_request_id_from_the_client_only_when_sane() -> None:
    ids = logs.RequestIds()
    assert logs.request_id_from("trace-42", ids) == "trace-42"
    for bad in (None, "", "x" * 129, "has space", "new\nline"):
        made = logs.request_id_from(bad, ids)
        assert made != bad and logs.VALID_REQUEST_ID.fullmatch(made)


def test_a_repeated_warning_is_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="scoreboard.test.repeat")
    warning = logs.RepeatedWarning(logging.getLogger("scoreboard.test.repeat"), every=60)
    assert warning.warn("redis", "redis %s unreachable", "10.0.0.5:6379")
    assert not any(warning.warn("redis", "redis %s unreachable", "10.0.0.5:6379") for _ in range(5))
    assert [r.getMessage() for r in caplog.records] == ["redis 10.0.0.5:6379 unreachable"]
    warning.clear("redis")  # over: the next one is logged at once, with nothing held
    assert warning.warn("redis", "redis %s unreachable", "10.0.0.5:6379")
    for _ in range(3):
        warning.warn("redis", "redis %s unreachable", "10.0.0.5:6379")
    warning._next["redis"] = 0.0  # the interval has passed
    assert warning.warn("redis", "redis %s unreachable", "10.0.0.5:6379")
    assert caplog.records[-1].getMessage() == (
        "redis 10.0.0.5:6379 unreachable (3 more like this in the last 60 s)"
    )
    assert len(caplog.records) == 3


def test_made_request_ids_are_unique_within_and_across_processes() -> None:
    one, two = logs.RequestIds(), logs.RequestIds()
    made = [one.new() for _ in range(1000)] + [two.new() for _ in range(1000)]
    assert len(set(made)) == 2000
    assert all(len(i) == 16 and logs.VALID_REQUEST_ID.fullmatch(i) for i in made)
