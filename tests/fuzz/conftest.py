"""The schemathesis suite (issue 9, "Tests that show it"): every operation of /openapi.json
fuzzed against a real `scoreboard serve` process, on the embedded default and on PostgreSQL +
Redis, with and without a valid bearer token.

Bounded for CI: `MAX_EXAMPLES` per operation and auth variant. Rate limits are raised for the
fuzz server (429 is documented on the limited routes either way) so that examples reach the
routes' own checks. The tally (operations, requests, 5xx, violations; tests/fuzz/tally.py) is
printed at the end, by the root conftest (tests/parallel.py, which also keeps each server's
tests on one xdist worker).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
import schemathesis
from schemathesis.schemas import BaseSchema
from tests.conftest import PG_ADMIN_URL, REDIS_URL, _pg_admin, require_service
from tests.e2e.server import ServerProcess

FUZZ_ENV = {
    "SCOREBOARD_RATE_LIMIT_SCORE": "1000000/minute",
    "SCOREBOARD_RATE_LIMIT_LOGIN": "1000000/minute",
    "SCOREBOARD_RATE_LIMIT_LOGIN_ADDRESS": "1000000/minute",
    "SCOREBOARD_RATE_LIMIT_REGISTER": "1000000/minute",
    "SCOREBOARD_RATE_LIMIT_REFRESH": "1000000/minute",
    "SCOREBOARD_JWT_SECRET": "fuzz-secret-" + "f" * 40,
}


@pytest.fixture(scope="module", params=["embedded", "scaled"])
def fuzz_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A real server: SQLite + in-process (embedded) or PostgreSQL + Redis (scaled)."""
    workdir = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    env = {**FUZZ_ENV, "SCOREBOARD_DATA_DIR": str(workdir / "data")}
    database = None
    if request.param == "scaled":
        require_service("PostgreSQL", PG_ADMIN_URL, 5432)
        require_service("Redis", REDIS_URL, 6379)
        database = f"scoreboard_fuzz_{uuid.uuid4().hex[:10]}"
        asyncio.run(_pg_admin(f'CREATE DATABASE "{database}"'))
        netloc = urlsplit(PG_ADMIN_URL).netloc
        env |= {
            "SCOREBOARD_DATABASE_URL": f"postgresql+asyncpg://{netloc}/{database}",
            "SCOREBOARD_REDIS_URL": REDIS_URL,
            "SCOREBOARD_REDIS_PREFIX": f"sbfuzz:{uuid.uuid4().hex[:10]}",
        }
    server = ServerProcess(workdir, env).start()
    try:
        yield server
    finally:
        server.stop()
        if database is not None:
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_server: ServerProcess) -> BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")


@pytest.fixture(scope="module")
def bearer(fuzz_server: ServerProcess) -> dict[str, str]:
    """A valid token of a user who exists (and may be deleted by the fuzzer: then 401)."""
    name = f"fuzz{uuid.uuid4().hex[:8]}"
    creds = {"username": name, "password": "fuzz-password"}
    with httpx.Client(base_url=fuzz_server.url, timeout=30) as http:
        http.post("/api/v1/auth/register", json=creds).raise_for_status()
        r = http.post("/api/v1/auth/login", json=creds)
        r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}
