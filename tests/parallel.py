"""pytest-xdist glue (a plugin of the root conftest): how many workers `-n auto` starts, which
tests must share a worker, and what a worker reports back to the controller.

pyproject's addopts run the suite on `-n auto --dist loadgroup`: tests go one by one to the
next idle worker, except the tests of a file listed in the `one_worker_files` ini option
(pyproject.toml), which one worker runs together, first. Those are the files whose tests share
a module-scoped fixture (a server started once per module: tests/e2e/test_malformed.py,
tests/fuzz): on several workers it would be set up on each, and again after every test of
another module in between. Collection fails when a test using a module-scoped fixture is in an
unlisted file, so the list cannot fall behind. `-n 0` runs everything in-process, serially.

xdist's own `xdist_group` mark does not group with pytest 9.2 (xdist 3.8 renames the test's
node id to carry the group, which pytest 9.2's structured ids ignore: pytest-xdist#1386), and
the controller never sees marks; a file list, which the controller reads from the node ids it
gets, does not depend on either.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from tests.fuzz import tally
from xdist.scheduler import LoadGroupScheduling

# Most of the suite waits on servers, subprocesses and sockets rather than on a core, so
# workers outnumber cores; the cap keeps PostgreSQL's connections (100 by default, and each
# test server holds a pool) and the machine's memory within bounds.
WORKERS_PER_CORE = 2
MIN_WORKERS = 4
MAX_WORKERS = 8
SHARED_SCOPES = {"class", "module", "package"}


def auto_workers(cores: int, args: list[str]) -> int:
    """Workers for `-n auto` with `cores` usable cores, given pytest's positional `args`.

    Only named tests (every argument `path::name`): none, they run in-process (quicker than
    starting workers for a few tests, and print()/breakpoint() work as usual).
    """
    if args and all("::" in arg for arg in args):
        return 0
    return max(MIN_WORKERS, min(MAX_WORKERS, WORKERS_PER_CORE * cores))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "one_worker_files",
        "test files (paths from the rootdir) whose tests one xdist worker runs together",
        type="linelist",
        default=[],
    )


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    return auto_workers(len(os.sched_getaffinity(0)), list(config.args))


class FileGroupScheduling(LoadGroupScheduling):
    """xdist's loadgroup scheduling, where a listed file's tests are one unit of work (the
    scheduler hands out the largest units first)."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        self.one_worker_files = set(config.getini("one_worker_files"))

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        return path if path in self.one_worker_files else super()._split_scope(nodeid)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") == "loadgroup":
        return FileGroupScheduling(config, log)
    return None  # xdist's own


def shared_fixture(item: pytest.Item) -> str | None:
    """The name of a class-, module- or package-scoped fixture `item` uses, or None."""
    fixtureinfo = getattr(item, "_fixtureinfo", None)
    if fixtureinfo is None:
        return None
    for name in fixtureinfo.names_closure:
        if any(d.scope in SHARED_SCOPES for d in fixtureinfo.name2fixturedefs.get(name, ())):
            return str(name)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    listed = set(config.getini("one_worker_files"))
    unlisted: dict[str, str] = {}
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        if path not in listed and (fixture := shared_fixture(item)) is not None:
            unlisted.setdefault(path, fixture)
    if unlisted:
        lines = [f"  {path} (fixture {fixture!r})" for path, fixture in sorted(unlisted.items())]
        raise pytest.UsageError(
            "tests using a module-scoped fixture, in files not in the one_worker_files ini "
            "option (pyproject.toml; tests/parallel.py says why):\n" + "\n".join(lines)
        )


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: its tally goes to the controller
        workeroutput["fuzz_tally"] = dict(tally.TALLY)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    tally.merge(getattr(node, "workeroutput", {}).get("fuzz_tally", {}))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    summary = tally.line()
    if summary is not None:
        terminalreporter.write_line(summary)
