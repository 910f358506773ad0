"""The live-update client: N WebSocket clients, R rounds, the delay from POST to frame.

    python bench/live_client.py --ws ws://127.0.0.1:P/ws/leaderboard --http http://127.0.0.1:P \
        --clients N --rounds R --trigger service|baseline [--tokens FILE] [--poster-tokens FILE]

One process (asyncio + websockets, its open-file limit raised) connects N clients and prints
`{"event": "connected", ...}`; it waits for a line on stdin (the bench measures the server's
memory meanwhile), then runs the rounds and prints `{"event": "result", ...}`. A round takes
the time just before its trigger, sends it (`service`: a score event POSTed by a top-10 user,
which changes the top; `baseline`: `GET /trigger?round=r`), and waits until every client
has received the frame reflecting it (`service`: the poster at its new score or higher;
`baseline`: the round number). Each trigger uses a fresh HTTP connection, for both. Clients
only record (time, frame) as frames arrive; frames are decoded between polls. After the
rounds (`service`), every client's last board is compared with `GET /api/v1/leaderboard`.
The result also counts the board frames (snapshot/update) the clients received during the
rounds and their payload bytes (`board_frames`, `board_frame_bytes`: bench/capacity.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

BOARD_TYPES = ("snapshot", "update")
Predicate = Callable[[dict[str, Any]], bool]


class Client:
    def __init__(self) -> None:
        self.frames: list[tuple[float, str | bytes]] = []
        self.seen = 0  # frames already examined in the current round
        self.retries = 0  # handshakes that failed and were tried again
        self.ws: ClientConnection | None = None

    async def run(self, url: str, gate: asyncio.Semaphore, args: argparse.Namespace) -> None:
        """Connect (a refused handshake is retried, a few times: real clients reconnect),
        then record every frame until cancelled."""
        for attempt in range(args.attempts):
            try:
                async with gate:
                    self.ws = await connect(
                        url,
                        open_timeout=args.timeout,
                        ping_interval=None,
                        compression=None,
                        max_size=2**20,
                    )
                break
            except Exception:
                self.retries += 1
                if attempt + 1 == args.attempts:
                    raise
                await asyncio.sleep(0.5 * (attempt + 1))
        assert self.ws is not None
        async for frame in self.ws:
            self.frames.append((time.perf_counter(), frame))

    def first_match(self, predicate: Predicate) -> float | None:
        """Time of the first unexamined frame that satisfies `predicate`, if one arrived."""
        while self.seen < len(self.frames):
            at, frame = self.frames[self.seen]
            self.seen += 1
            if predicate(json.loads(frame)):
                return at
        return None

    def last_board(self) -> Any:
        for _, frame in reversed(self.frames):
            message = json.loads(frame)
            if message.get("type") in BOARD_TYPES:
                return message.get("items")
        return None


async def connect_all(args: argparse.Namespace, clients: list[Client]) -> list[asyncio.Task[None]]:
    tokens = args.token_list
    gate = asyncio.Semaphore(args.connect_concurrency)
    tasks = []
    for n, client in enumerate(clients):
        url = f"{args.ws}?limit=10" + (f"&token={tokens[n % len(tokens)]}" if tokens else "")
        tasks.append(asyncio.create_task(client.run(url, gate, args)))
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:  # every client holds its snapshot or gave up
        if all(c.frames or t.done() for c, t in zip(clients, tasks, strict=True)):
            break
        await asyncio.sleep(0.1)
    return tasks


async def trigger(
    args: argparse.Namespace, http: httpx.AsyncClient, r: int, poster: str
) -> Predicate:
    """Send round `r`'s trigger; the predicate recognising the frame that reflects it."""
    if args.trigger == "baseline":
        (await http.get(f"{args.http}/trigger", params={"round": r})).raise_for_status()
        return lambda m: m.get("round") == r
    answer = await http.post(
        f"{args.http}/api/v1/scores/events",
        json={"action_type": "TASK_COMPLETED"},
        headers={"authorization": f"Bearer {poster}", "idempotency-key": uuid.uuid4().hex},
    )
    answer.raise_for_status()
    event = answer.json()
    user, score = event["user_id"], event["new_score"]
    return lambda m: (
        m.get("type") in BOARD_TYPES
        and any(
            i.get("user_id") == user and i.get("score", 0) >= score for i in m.get("items") or ()
        )
    )


async def one_round(
    args: argparse.Namespace, http: httpx.AsyncClient, clients: list[Client], r: int, poster: str
) -> tuple[list[float], float, int]:
    """(each client's delay, the trigger's HTTP round trip, clients that never got it)."""
    for client in clients:
        client.seen = len(client.frames)
    started = time.perf_counter()
    predicate = await trigger(args, http, r, poster)
    http_rtt = time.perf_counter() - started
    pending, delays = set(range(len(clients))), []
    deadline = started + args.round_timeout
    while pending and time.perf_counter() < deadline:
        for n in list(pending):
            at = clients[n].first_match(predicate)
            if at is not None:
                delays.append(at - started)
                pending.discard(n)
        if pending:
            await asyncio.sleep(0.01)
    return delays, http_rtt, len(pending)


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def delivered(clients: list[Client], since: list[int]) -> dict[str, int]:
    """Board frames (snapshot/update) the clients received after `since` (per client, the
    number of frames held then), and their payload bytes: what the fan-out sent."""
    count = size = 0
    for client, start in zip(clients, since, strict=True):
        for _, frame in client.frames[start:]:
            if json.loads(frame).get("type") in BOARD_TYPES:
                count += 1
                size += len(frame.encode() if isinstance(frame, str) else frame)
    return {"board_frames": count, "board_frame_bytes": size}


async def rounds(args: argparse.Namespace, clients: list[Client]) -> dict[str, Any]:
    since = [len(c.frames) for c in clients]
    posters = args.poster_list or [""]
    limits = httpx.Limits(max_keepalive_connections=0)  # a fresh connection per trigger
    all_delays: list[float] = []
    round_p99s, extras, rtts, missed = [], [], [], 0
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        for r in range(args.rounds):
            delays, rtt, lost = await one_round(args, http, clients, r, posters[r % len(posters)])
            all_delays += delays
            missed += lost
            rtts.append(rtt)
            if delays:
                round_p99s.append(quantile(delays, 0.99))
                extras.append(min(delays) - rtt)
            await asyncio.sleep(args.gap)
        board = await final_board(args, http)
    return {
        "p50": quantile(all_delays, 0.5),
        "p99": quantile(all_delays, 0.99),
        "worst_round_p99": max(round_p99s, default=float("nan")),
        "http_rtt_median": statistics.median(rtts) if rtts else float("nan"),
        "extra_median": statistics.median(extras) if extras else float("nan"),
        "missed": missed,
        **convergence(clients, board),
        **delivered(clients, since),
    }


async def final_board(args: argparse.Namespace, http: httpx.AsyncClient) -> Any:
    if args.trigger != "service":
        return None
    await asyncio.sleep(args.settle)  # the last update's tick and delivery
    answer = await http.get(f"{args.http}/api/v1/leaderboard", params={"limit": 10})
    return answer.json()["items"]


def convergence(clients: list[Client], board: Any) -> dict[str, int]:
    if board is None:
        return {"converged": -1, "clients": len(clients)}
    same = sum(1 for c in clients if c.last_board() == board)
    return {"converged": same, "clients": len(clients)}


def emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    clients = [Client() for _ in range(args.clients)]
    tasks = await connect_all(args, clients)
    connected = sum(1 for c in clients if c.frames)
    retries = sum(c.retries for c in clients)
    emit({"event": "connected", "clients": connected, "wanted": args.clients, "retries": retries})
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    result = await rounds(args, clients) if connected else {"missed": args.rounds}
    emit({"event": "result", "connected": connected, "retries": retries, **result})
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ws", required=True)
    parser.add_argument("--http", required=True)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--trigger", choices=("service", "baseline"), default="service")
    parser.add_argument("--tokens", help="file of bearer tokens for the connections")
    parser.add_argument("--poster-tokens", help="file of tokens of top-10 users (service)")
    parser.add_argument("--connect-concurrency", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=300.0, help="connecting, in all")
    parser.add_argument("--attempts", type=int, default=5, help="handshakes per client")
    parser.add_argument("--round-timeout", type=float, default=20.0)
    parser.add_argument("--gap", type=float, default=0.25, help="seconds between rounds")
    parser.add_argument("--settle", type=float, default=1.0)
    args = parser.parse_args()
    args.token_list = Path(args.tokens).read_text().split() if args.tokens else []
    args.poster_list = Path(args.poster_tokens).read_text().split() if args.poster_tokens else []
    return args


if __name__ == "__main__":
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.run(main(parse_args()))
    except ImportError:
        asyncio.run(main(parse_args()))
