"""Schemathesis over every operation (see conftest.py): no 5xx, every status documented,
every response body and content type as the document says."""

from __future__ import annotations

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.e2e.server import ServerProcess
from tests.fuzz.tally import TALLY, operation  # the module tests/parallel.py reads

from scoreboard.app import create_app
from scoreboard.config import Settings

MAX_EXAMPLES = 25
CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# The document the server serves, built in-process so that pytest can collect one test per
# operation before any server runs (`test_the_served_document_is_the_one_fuzzed` checks it).
LOCAL_DOCUMENT = create_app(
    Settings(_env_file=None, database_url="sqlite+aiosqlite:///:memory:")  # type: ignore[call-arg]
).openapi()
schema = schemathesis.openapi.from_dict(LOCAL_DOCUMENT)


FUZZ = settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


def call_and_tally(case: Case, server: ServerProcess, headers: dict[str, str]) -> None:
    TALLY[operation(case.operation.label)] = 1
    TALLY["requests"] += 1
    response = case.call(base_url=server.url, headers=headers, timeout=60)
    if response.status_code >= 500:
        TALLY["5xx"] += 1
    try:
        case.validate_response(response, checks=CHECKS)
    except BaseException:  # schemathesis' FailureGroup
        TALLY["violations"] += 1
        raise


@schema.parametrize()
@FUZZ
def test_every_operation_anonymous(case: Case, fuzz_server: ServerProcess) -> None:
    call_and_tally(case, fuzz_server, {})


@schema.parametrize()
@FUZZ
def test_every_operation_with_a_valid_token(
    case: Case, fuzz_server: ServerProcess, bearer: dict[str, str]
) -> None:
    call_and_tally(case, fuzz_server, bearer)


def test_the_served_document_is_the_one_fuzzed(fuzz_server: ServerProcess) -> None:
    served = httpx.get(f"{fuzz_server.url}/openapi.json", timeout=30).json()
    assert served == LOCAL_DOCUMENT
