"""`scoreboard serve --workers N` on PostgreSQL + Redis: one port, every worker serving, live
clients of one worker seeing events posted through another, a killed worker replaced, SIGTERM
stopping all of them with status 0; refused on the embedded default.

Which worker holds a connection is read from the kernel: the socket inodes in each worker's
/proc/<pid>/fd against the established connections to the port in /proc/net/tcp.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from tests.e2e.client import LiveClient, new_user
from tests.e2e.conftest import FAST
from tests.e2e.server import START_SECONDS, ServerProcess

pytestmark = pytest.mark.e2e

CONNECTIONS = 16  # all of them on one worker by chance: 2 x 2**-16


@pytest.fixture
def scaled_env(
    tmp_path: Path, fresh_pg_url: str, redis_url: str, redis_prefix: str
) -> dict[str, str]:
    return {
        **FAST,
        "SCOREBOARD_DATA_DIR": str(tmp_path / "data"),
        "SCOREBOARD_DATABASE_URL": fresh_pg_url,
        "SCOREBOARD_REDIS_URL": redis_url,
        "SCOREBOARD_REDIS_PREFIX": redis_prefix,
        "SCOREBOARD_WS_REQUIRE_AUTH": "false",
    }


@pytest.fixture
def workers(tmp_path: Path, scaled_env: dict[str, str]) -> Iterator[ServerProcess]:
    """`serve --workers 2`, once both workers serve."""
    server = ServerProcess(tmp_path / "workers", scaled_env, args=("--workers", "2"))
    server.start(timeout=2 * START_SECONDS)  # a parent and its two workers
    try:
        wait_until(lambda: "2 workers serving" in server.log(), 60, server.log)
        assert len(worker_pids(server)) == 2
        yield server
    finally:
        server.stop()


def wait_until(done: Callable[[], bool], within: float, detail: Callable[[], object]) -> None:
    deadline = time.monotonic() + within
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {detail()}")
        time.sleep(0.1)


def worker_pids(server: ServerProcess) -> list[int]:
    """The parent's worker processes (multiprocessing's resource tracker left out)."""
    assert server.proc is not None
    pid = server.proc.pid
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return []
    pids = []
    for child in map(int, children):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"resource_tracker" not in cmdline and alive(child):
            pids.append(child)
    return pids


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def holder(server: ServerProcess, pids: list[int], client_port: int) -> int | None:
    """The worker holding the established connection from `client_port` to the service."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        port, peer = int(local.split(":")[1], 16), int(remote.split(":")[1], 16)
        if state == "01" and port == server.port and peer == client_port:
            inodes.add(f"socket:[{inode}]")
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return pid
            except FileNotFoundError:
                continue
    return None


async def spread(server: ServerProcess, pids: list[int]) -> dict[int, list[LiveClient]]:
    """CONNECTIONS live clients, grouped by the worker serving each."""
    ws = f"{server.ws_url}/ws/leaderboard"
    clients = [await LiveClient.open(ws) for _ in range(CONNECTIONS)]
    for client in clients:
        await client.wait_for(lambda m: m["type"] == "snapshot", within=10)
    by_worker: dict[int, list[LiveClient]] = {pid: [] for pid in pids}
    for client in clients:
        pid = holder(server, pids, int(client.ws.local_address[1]))
        assert pid is not None
        by_worker[pid].append(client)
    return by_worker


async def post_event(server: ServerProcess, pids: list[int], token: str) -> tuple[int, int]:
    """POST one score event on a connection of our own: (status, the worker that served it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        body = b'{"action_type": "TASK_COMPLETED"}'
        writer.write(
            b"POST /api/v1/scores/events HTTP/1.1\r\nHost: test\r\n"
            + f"Authorization: Bearer {token}\r\n".encode()
            + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        status = int((await reader.readline()).split()[1])
        worker = holder(server, pids, writer.get_extra_info("sockname")[1])
        assert worker is not None
        return status, worker
    finally:
        writer.close()


async def test_both_workers_serve_and_see_each_others_events(workers: ServerProcess) -> None:
    pids = worker_pids(workers)
    # Each worker leads a session of its own (see transport.workers.detach_from_parent).
    assert [os.getsid(pid) for pid in pids] == pids
    by_worker = await spread(workers, pids)
    clients = [client for group in by_worker.values() for client in group]
    try:
        assert all(by_worker.values()), {pid: len(c) for pid, c in by_worker.items()}
        async with httpx.AsyncClient(base_url=workers.url, timeout=10) as http:
            user_id, token = await new_user(http)
            status, posted_on = await post_event(workers, pids, token)
            assert status == 201
            board = (await http.get("/api/v1/leaderboard")).json()["items"]
        assert [item["user_id"] for item in board] == [user_id]
        # The clients of the worker that did not take the POST get it through the broker.
        others = [c for pid, group in by_worker.items() if pid != posted_on for c in group]
        assert others
        for client in clients:
            await client.wait_for(lambda m: m.get("items"), within=10)
            assert client.last_board() == board
    finally:
        for client in clients:
            await client.ws.close()


async def test_a_killed_worker_is_replaced(workers: ServerProcess) -> None:
    victim, survivor = worker_pids(workers)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in worker_pids(workers), 10, workers.log)
    async with httpx.AsyncClient(base_url=workers.url, timeout=10) as http:
        # New connections go to the survivor while the replacement starts.
        for _ in range(20):
            r = await http.get("/readyz", headers={"Connection": "close"})
            assert r.status_code == 200
    wait_until(lambda: len(worker_pids(workers)) == 2, 60, workers.log)
    replacement = next(pid for pid in worker_pids(workers) if pid != survivor)
    assert survivor in worker_pids(workers)
    assert f"(pid {victim}) exited with status -9; restarting" in workers.log()

    # The replacement serves once it has started (it listens only then).
    deadline = time.monotonic() + 60
    while not all((groups := await _spread_and_close(workers, [survivor, replacement])).values()):
        assert time.monotonic() < deadline, (groups, workers.log())
        await asyncio.sleep(0.5)


async def _spread_and_close(server: ServerProcess, pids: list[int]) -> dict[int, int]:
    by_worker = await spread(server, pids)
    for group in by_worker.values():
        for client in group:
            await client.ws.close()
    return {pid: len(group) for pid, group in by_worker.items()}


async def test_sigterm_stops_every_worker(workers: ServerProcess) -> None:
    pids = worker_pids(workers)
    by_worker = await spread(workers, pids)
    assert all(by_worker.values())
    assert workers.proc is not None
    workers.proc.send_signal(signal.SIGTERM)
    for group in by_worker.values():
        for client in group:
            await asyncio.wait_for(client.closed.wait(), 30)
            # A clean close from each worker's shutdown (a killed one would leave 1006).
            assert client.ws.close_code == 1012
    assert await asyncio.to_thread(workers.proc.wait, 60) == 0
    assert not [pid for pid in pids if alive(pid)]


def test_workers_die_with_the_parent(workers: ServerProcess) -> None:
    pids = worker_pids(workers)
    assert workers.proc is not None
    workers.proc.kill()  # no chance to stop them: the kernel sends them SIGTERM
    workers.proc.wait(10)
    wait_until(lambda: not [pid for pid in pids if alive(pid)], 30, lambda: pids)


def test_embedded_workers_are_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
    env["SCOREBOARD_DATA_DIR"] = str(tmp_path / "data")
    exe = str(Path(sys.executable).with_name("scoreboard"))
    done = subprocess.run(
        [exe, "serve", "--port", "1", "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "--workers 2 needs PostgreSQL + Redis" in lines[0]
    assert "ONE process" in lines[0]
    assert not (tmp_path / "data").exists()  # refused before anything was opened
