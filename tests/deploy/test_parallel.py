"""The suite's parallel run (pyproject's addopts, tests/parallel.py), checked on small suites
run by pytest in a subprocess with this project's configuration: the tests of a file in
`one_worker_files` run on one worker (its module-scoped fixture set up once per parameter)
while other tests spread over the workers, a module-scoped fixture in an unlisted file stops
the run, the workers' fuzz tallies add up in the controller's summary, and a run that collects
nothing still fails."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.parallel import auto_workers

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = """
import os
from pathlib import Path

pytest_plugins = ["tests.parallel"]


def note(line: str) -> None:
    with Path(os.environ["PARALLEL_LOG"]).open("a") as log:
        log.write(f"{line} {os.environ.get('PYTEST_XDIST_WORKER', 'main')}\\n")
"""
SHARED = """
import pytest

from conftest import note


@pytest.fixture(scope="module", params=["a", "b"])
def server(request: pytest.FixtureRequest) -> str:
    note(f"setup {request.param}")
    return str(request.param)


@pytest.mark.parametrize("n", range(6))
def test_uses_the_module_fixture(server: str, n: int) -> None:
    note(f"shared {server}")
"""
ALONE = """
import pytest

from conftest import note
from tests.fuzz.tally import TALLY, operation


@pytest.mark.parametrize("n", range(12))
def test_alone(n: int) -> None:
    note("alone")
    TALLY[operation(f"op{n % 3}")] = 1
    TALLY["requests"] += 1
"""


def run_pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """This project's pytest configuration (pyproject.toml) on the suite in `tmp_path`."""
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PARALLEL_"))}
    env["PARALLEL_LOG"] = str(tmp_path / "log.txt")
    command = [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml")]
    command += ["--rootdir", str(tmp_path), "-p", "no:cacheprovider", *args, str(tmp_path)]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def logged(tmp_path: Path, what: str) -> list[str]:
    """The workers that logged `what` (one entry per line)."""
    lines = (tmp_path / "log.txt").read_text().splitlines()
    return [line.rsplit(" ", 1)[1] for line in lines if line.rsplit(" ", 1)[0] == what]


def test_a_listed_file_runs_on_one_worker_and_the_others_spread(tmp_path: Path) -> None:
    (tmp_path / "test_shared.py").write_text(textwrap.dedent(SHARED))
    (tmp_path / "test_alone.py").write_text(textwrap.dedent(ALONE))
    done = run_pytest(tmp_path, "-n", "3", "-o", "one_worker_files=test_shared.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "24 passed" in done.stdout, done.stdout
    assert len(logged(tmp_path, "setup a")) == len(logged(tmp_path, "setup b")) == 1
    shared = logged(tmp_path, "shared a") + logged(tmp_path, "shared b")
    assert len(shared) == 12 and len(set(shared)) == 1  # one worker, each fixture set up once
    assert set(logged(tmp_path, "setup a") + logged(tmp_path, "setup b")) == set(shared)
    alone = logged(tmp_path, "alone")
    assert len(alone) == 12 and len(set(alone)) >= 2 and "main" not in alone
    # 12 tests on several workers: 3 operations (a union), 12 requests (a sum)
    assert "schemathesis tally: operations=3, requests=12, 5xx=0, violations=0" in done.stdout


def test_a_module_fixture_in_an_unlisted_file_stops_the_run(tmp_path: Path) -> None:
    (tmp_path / "test_shared.py").write_text(textwrap.dedent(SHARED))
    done = run_pytest(tmp_path, "-n", "0")
    assert done.returncode == 4, done.stdout + done.stderr  # a usage error, before any test
    assert "not in the one_worker_files ini option" in done.stderr, done.stderr
    assert "test_shared.py (fixture 'server')" in done.stderr
    assert not (tmp_path / "log.txt").exists()


def test_a_parallel_run_that_collects_nothing_fails(tmp_path: Path) -> None:
    (tmp_path / "test_empty.py").write_text("X = 1\n")
    done = run_pytest(tmp_path, "-n", "2")
    assert done.returncode == 5, done.stdout + done.stderr
    assert "created: 2/2 workers" in done.stdout, done.stdout


def test_auto_workers() -> None:
    assert auto_workers(2, ["tests"]) == 4  # at least 4: the suite mostly waits
    assert auto_workers(3, ["tests/api", "tests/e2e/test_live.py"]) == 6
    assert auto_workers(64, []) == 8  # capped
    # only named tests: in-process
    assert auto_workers(2, ["tests/a.py::test_x", "tests/b.py::test_y[sqlite]"]) == 0
    assert auto_workers(2, ["tests/a.py::test_x", "tests/b.py"]) == 4
