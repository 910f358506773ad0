"""The bench's pure helpers: table, wrk script, result parsing, correctness checks, boards.

Never timings, and no wrk or pgbench here: `python bench/perf.py --quick` is the smoke run of
those. What is checked is that the bench reports faithfully: a lost or double-counted event,
an unconverged client or a failed row cannot come out as "ok".
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bench.live_client import quantile
from bench.perfkit import pgbench
from bench.perfkit.checks import check_converged, check_ingest, check_statuses
from bench.perfkit.loads import combine
from bench.perfkit.populate import TABLES, fill_sqlite, rows, score_of, user_id
from bench.perfkit.table import Row, rate, ratio, render, signed
from bench.perfkit.wrk import WrkResult, parse_output, render_lua

from scoreboard.store.migrate import run_migrations
from scoreboard.store.sql import SqlStore


def test_table_aligns_columns_and_failed_rows_say_why() -> None:
    rows_ = [
        Row(
            "`POST /x`", "1,039 ev/s", "pgbench c16: 5,562 txn/s", 0.1867, "ok: acked 3 = stored 3"
        ),
        Row.failed("reindex", TimeoutError("gave up | after 23 s")),
    ]
    lines = render(rows_, "title").splitlines()
    assert lines[0] == "title"
    assert len({len(line) for line in lines[1:]}) == 1  # every line padded to one width
    assert "| 0.19 " in lines[3]
    assert "FAILS: TimeoutError: gave up / after 23 s" in lines[4]  # a pipe cannot break the row
    assert lines[4].split("|")[4].strip() == "—"  # no ratio for a failed row


def test_figures_are_written_as_the_issue_writes_them() -> None:
    assert rate(1039.4, "ev/s") == "1,039 ev/s"
    assert rate(5562, "txn/s") == "5,562 txn/s"
    assert rate(34_200, "req/s") == "34.2k req/s"
    assert signed(-0.0012) == "-1.2 ms"
    assert signed(0.084) == "+84 ms"
    assert ratio(1.0, 0.0) is None and ratio(1.0, 4.0) == 0.25


def test_lua_script_rotates_tokens_keys_and_records_acknowledged_ids(tmp_path: Path) -> None:
    script = render_lua(
        "POST",
        "/api/v1/scores/events",
        json.dumps({"action_type": "TASK_COMPLETED"}),
        tokens_file=tmp_path / "tokens.txt",
        key_prefix="run-1",
        ids_file=tmp_path / "ids.txt",
    )
    assert f'io.lines("{tmp_path / "tokens.txt"}")' in script
    assert "tokens[(counter % #tokens) + 1]" in script
    assert 'headers["Idempotency-Key"] = "run-1-" .. counter' in script
    assert "ids:write(id, '\\n')" in script
    assert "status >= 200 and status < 300" in script
    assert '"{\\"action_type\\": \\"TASK_COMPLETED\\"}"' in script  # the body, as a Lua string
    assert script.count("function ") == 5  # setup, init, request, response, done
    assert "{{" not in script and "}}" not in script.replace("}}\\n", "")  # template expanded


def test_lua_script_runs_under_luajit_as_wrk_runs_it(tmp_path: Path) -> None:
    """The real script in LuaJIT (wrk's Lua) with wrk's hooks called as wrk calls them."""
    from lupa.luajit21 import LuaRuntime

    (tmp_path / "tokens.txt").write_text("t1\nt2\nt3\n")
    script = render_lua(
        "POST",
        "/api/v1/scores/events",
        '{"action_type":"TASK_COMPLETED"}',
        tokens_file=tmp_path / "tokens.txt",
        key_prefix="run-1",
        ids_file=tmp_path / "ids.txt",
    )
    lua = LuaRuntime()
    lua.execute(
        "wrk = {format = function(m, p, h, b) return {method=m, path=p, headers=h, body=b} end}"
    )
    lua.execute(script)
    lua.execute("setup({get = function(self, name) return _G[name] end}); init({})")
    sent = [lua.eval("request()") for _ in range(4)]
    assert [r["headers"]["Authorization"] for r in sent] == [f"Bearer t{n}" for n in (2, 3, 1, 2)]
    assert [r["headers"]["Idempotency-Key"] for r in sent] == [f"run-1-{n}" for n in range(1, 5)]
    assert sent[0]["method"] == "POST" and sent[0]["body"] == '{"action_type":"TASK_COMPLETED"}'
    lua.execute(
        """
        response(201, {}, '{"event_id": 42, "user_id": "u"}')
        response(201, {}, '{"event_id":7}')
        response(503, {}, '{"error":{}}')
        response(429, {}, '{"error":{}}')
        local printed = {}
        io.write = function(text) table.insert(printed, text) end
        local summary = {requests = 4, duration = 2000000,
                         errors = {connect = 0, read = 1, write = 0, timeout = 0}}
        done(summary, {percentile = function(self, p) return p * 1000 end}, {})
        result = table.concat(printed)
        """
    )
    result = parse_output(lua.eval("result"))
    assert (result.ok, result.bad, result.requests, result.socket_errors) == (2, 2, 4, 1)
    assert result.bad_codes == {"503": 1, "429": 1} and result.p99 == 0.099
    assert (tmp_path / "ids.txt").read_text().split() == ["42", "7"]


def test_lua_script_for_a_plain_read_sends_no_credentials() -> None:
    script = render_lua("GET", "/api/v1/leaderboard?limit=10")
    assert "Authorization" not in script and "Idempotency-Key" not in script
    assert "ids:write" not in script
    assert re.search(r'wrk\.format\("GET", "/api/v1/leaderboard\?limit=10", headers, nil\)', script)


def test_wrk_result_line_is_parsed_and_simultaneous_runs_combine() -> None:
    line = (
        'BENCH {"ok":900,"bad":3,"requests":903,"duration_us":3000000,"p50_us":20000,'
        '"p99_us":365000,"connect":0,"read":1,"write":0,"timeout":2,"codes":{"503":3}}'
    )
    one = parse_output("Running 3s test\n" + line + "\n")
    assert one.ok_rate == 300.0 and one.p99 == 0.365 and one.socket_errors == 3
    assert one.bad_codes == {"503": 3}
    two = WrkResult(100, 0, 100, 3.5, 0.01, 0.5, 0)
    both = combine([one, two])
    assert (both.ok, both.seconds, both.p99, both.bad_codes) == (1000, 3.5, 0.5, {"503": 3})


def test_ingest_check_passes_only_when_every_acknowledged_event_is_stored_once() -> None:
    good = check_ingest([1, 2, 3], [1, 2, 3, 4], score_sum=40, points=10, in_flight_bound=1)
    assert good.ok and "1 cut off in flight" in good.text
    lost = check_ingest([1, 2, 5], [1, 2, 3], score_sum=30, points=10, in_flight_bound=5)
    assert not lost.ok and "1 acknowledged events not stored" in lost.text
    twice = check_ingest([1, 1, 2], [1, 2], score_sum=20, points=10, in_flight_bound=0)
    assert not twice.ok and "acknowledged twice" in twice.text
    miscounted = check_ingest([1, 2], [1, 2], score_sum=30, points=10, in_flight_bound=0)
    assert not miscounted.ok and "sum of scores 30" in miscounted.text
    unexplained = check_ingest([1], [1, 2, 3], score_sum=30, points=10, in_flight_bound=1)
    assert not unexplained.ok
    assert not check_ingest([], [], score_sum=0, points=10, in_flight_bound=0).ok


def test_convergence_and_status_checks() -> None:
    board = [{"rank": 1, "user_id": "a", "score": 10}]
    assert check_converged([board, board], board).ok
    stale = check_converged([board, []], board)
    assert not stale.ok and "1/2" in stale.text
    assert not check_converged([board], board, missed=1).ok
    assert not check_converged([], board).ok
    assert check_statuses(10, 0).ok
    refused = check_statuses(10, 2, {"503": 2})
    assert not refused.ok and "2x 503" in refused.text


def test_pgbench_script_and_summary() -> None:
    text = pgbench.script(users=1000, points=10)
    assert text.count("INSERT INTO") == 2 and "ON CONFLICT (user_id) DO UPDATE" in text
    assert text.startswith("\\set uid random(1, 1000)")
    summary = "latency average = 2.876 ms\ntps = 5562.123456 (without initial connection time)\n"
    result = pgbench.parse_output(summary)
    assert (result.tps, result.latency_ms) == (5562.123456, 2.876)


def test_live_client_quantile() -> None:
    assert quantile([0.3, 0.1, 0.2], 0.5) == 0.2
    assert quantile([float(n) for n in range(100)], 0.99) == 99.0


def test_board_rows_are_consistent_and_ids_unique() -> None:
    ids = {user_id(n) for n in range(10_000)}
    assert len(ids) == 10_000 and all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)
    scores = {r[0]: r[1] for r in rows("user_scores", 50, top=None, sqlite=True)}
    events = list(rows("score_events", 50, top=None, sqlite=True))
    assert all(scores[e[1]] == e[3] == e[4] for e in events)  # one event carries the total
    assert [score_of(n, top=3) for n in range(3)] == [10_000_000, 9_999_000, 9_998_000]
    assert all(len(r) == len(TABLES["score_events"]) for r in events)


async def test_a_populated_board_reads_back_through_the_real_store(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'board.db'}"
    await run_migrations(url)
    fill_sqlite(tmp_path / "board.db", 30, scored=True, top=5)
    store = await SqlStore.open(url)
    try:
        page, total = await store.standings_page(3, 0)
        assert total == 30 and await store.count_events() == 30
        assert [s.user_id for s in page] == [user_id(0), user_id(1), user_id(2)]
        assert page[0].score == 10_000_000
        user = await store.get_user(user_id(7))
        assert user is not None and user.username == "bench7"
    finally:
        await store.close()


def test_live_verdict_fails_on_unconnected_or_unconverged_clients() -> None:
    from bench.perfkit.rows_live import live_verdict

    fine = {"clients": 3, "connected": 3, "converged": 3, "missed": 0, "retries": 2}
    assert live_verdict(fine).ok and "2 handshakes refused and retried" in live_verdict(fine).text
    assert not live_verdict({**fine, "connected": 2}).ok
    assert not live_verdict({**fine, "converged": 2}).ok
    assert not live_verdict({**fine, "missed": 1}).ok


def test_a_failed_reindex_is_reported_by_its_exception_line() -> None:
    from bench.perfkit.rows_startup import last_error

    rich = (
        "╭───── Traceback (most recent call last) ─────╮\n"
        '│ ❱ 96 │ raise unavailable(TimeoutError(f"{name}: no answer within │\n'
        "╰──────────────────────────────────────────────╯\n"
        "ServiceUnavailable: The database cannot be reached; retry later.\n"
    )
    assert last_error(rich) == "ServiceUnavailable: The database cannot be reached; retry later."
    plain = "Traceback...\nredis.exceptions.TimeoutError: Timeout reading from socket\n"
    assert last_error(plain) == "redis.exceptions.TimeoutError: Timeout reading from socket"
    assert last_error("something odd\n│ boxed │\n") == "boxed"


def test_board_sums_must_equal_the_totals() -> None:
    from bench.perfkit.checks import Verdict
    from bench.perfkit.rows_ingest import boards_agree

    good = Verdict(True, "acked 3 = stored 3")
    assert boards_agree(good, {"daily": 30, "weekly": 30}, 30).ok
    assert "2 more boards" in boards_agree(good, {"daily": 30, "weekly": 30}, 30).text
    lost = boards_agree(good, {"daily": 30, "weekly": 20}, 30)
    assert not lost.ok and "weekly 20 != 30" in lost.text
    assert boards_agree(good, {}, 30) == good  # one board: nothing more to check
