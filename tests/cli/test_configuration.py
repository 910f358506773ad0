"""The command line's handling of configuration: one line naming the variable for a bad
value, a warning for an unknown `SCOREBOARD_*` variable, a clear line for a database that does
not exist, `check`, `--version`, and `token` only for existing accounts. Real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from scoreboard import __version__
from scoreboard.configuration import ConfigError, load_settings, unknown_variables
from scoreboard.redact import redact_url

SCOREBOARD = str(Path(sys.executable).with_name("scoreboard"))


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
    clean.update(env)
    return subprocess.run(
        [SCOREBOARD, *args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=60
    )


def test_a_bad_value_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    done = run(["check"], tmp_path, SCOREBOARD_TOKEN_TTL_SECONDS="abc")
    assert done.returncode == 2
    assert "SCOREBOARD_TOKEN_TTL_SECONDS='abc'" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    served = run(["serve", "--port", "1"], tmp_path, SCOREBOARD_WS_TICK_MS="-5")
    assert served.returncode == 2
    assert "SCOREBOARD_WS_TICK_MS" in served.stderr
    assert "Traceback" not in served.stderr and len(served.stderr.splitlines()) <= 2


def test_secret_values_are_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCOREBOARD_DATABASE_URL", "mysql://root:hunter2@db/x")
    monkeypatch.setenv("SCOREBOARD_TOKEN_TTL_SECONDS", "0")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert any("SCOREBOARD_TOKEN_TTL_SECONDS='0'" in line for line in caught.value.lines)
    assert redact_url("postgresql://u:hunter2@h/db") == "postgresql://u:***@h/db"
    assert "hunter2" not in redact_url("redis://:hunter2@h:6379/0")


def test_unknown_variables_are_named_with_the_closest_setting() -> None:
    lines = unknown_variables(
        {
            "SCOREBOARD_DATABSE_URL": "postgresql://x",
            "SCOREBOARD_WS_QUEUE_SIZE": "3",
            "SCOREBOARD_TEST_PG": "postgresql://x",  # the test suite's own
            "SCOREBOARD_REDIS_URL": "redis://x",  # a setting
            "PATH": "/bin",
        }
    )
    assert lines[0].startswith("SCOREBOARD_DATABSE_URL is not a scoreboard setting")
    assert "did you mean SCOREBOARD_DATABASE_URL?" in lines[0]
    assert "SCOREBOARD_WS_QUEUE_SIZE is no longer read" in lines[1]
    assert len(lines) == 2


def test_a_misspelled_variable_is_warned_about_by_every_command(tmp_path: Path) -> None:
    done = run(["migrate"], tmp_path, SCOREBOARD_DATABSE_URL="postgresql://x/y")
    assert done.returncode == 0
    assert "did you mean SCOREBOARD_DATABASE_URL?" in done.stderr


def pg_url(database: str) -> str:
    from tests.conftest import PG_ADMIN_URL

    parts = urlsplit(PG_ADMIN_URL)
    return f"postgresql://{parts.netloc}/{database}"


def test_a_database_that_does_not_exist_is_one_line_with_the_command(
    tmp_path: Path, pg_database_url: str
) -> None:
    name = f"scoreboard_missing_{uuid.uuid4().hex[:8]}"
    for command in (["serve", "--port", "1"], ["migrate"], ["check"]):
        done = run(command, tmp_path, SCOREBOARD_DATABASE_URL=pg_url(name))
        output = done.stdout + done.stderr
        assert done.returncode in (1, 2), command
        assert f"PostgreSQL database '{name}' does not exist" in output, command
        assert f"createdb -h 127.0.0.1 -p 5432 -U postgres {name}" in output, command
        assert "Traceback" not in output, command


def test_check_reaches_both_backends(tmp_path: Path, pg_database_url: str, redis_url: str) -> None:
    database = pg_url(urlsplit(pg_database_url).path.lstrip("/"))
    done = run(
        ["check"], tmp_path, SCOREBOARD_DATABASE_URL=database, SCOREBOARD_REDIS_URL=redis_url
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok    redis redis://127.0.0.1:6379/0: Redis " in done.stdout
    assert "ok    mode: scaled" in done.stdout
    assert done.stdout.rstrip().endswith("ready to serve")
    down = run(
        ["check"],
        tmp_path,
        SCOREBOARD_DATABASE_URL=database,
        SCOREBOARD_REDIS_URL="redis://127.0.0.1:1/0",
    )
    assert down.returncode == 1
    assert "FAIL  redis redis://127.0.0.1:1/0: cannot be reached" in down.stdout
    assert down.stdout.rstrip().endswith("NOT ready to serve")


def test_check_on_a_fresh_embedded_directory(tmp_path: Path) -> None:
    done = run(["check"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not there yet; `scoreboard serve` creates it" in done.stdout
    assert "ok    mode: embedded" in done.stdout
    assert "ok    boards: global, daily, weekly, monthly (built-in)" in done.stdout
    assert not (tmp_path / "scoreboard-data" / "scoreboard.db").exists()  # check writes nothing


def test_a_bad_boards_file_is_one_line_naming_the_board_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "boards.json"
    path.write_text(
        '{"boards": [{"board_id": "weekly_eu", "window": "weekly", "timezone": "Mars"}]}'
    )
    for args, out in ((["check"], "stdout"), (["serve", "--port", "1"], "stderr")):
        done = run(args, tmp_path, SCOREBOARD_BOARDS_FILE=str(path))
        text = getattr(done, out)
        assert done.returncode == 2, text
        assert "board 'weekly_eu': field 'timezone'" in text
        assert "Traceback" not in done.stdout + done.stderr
    path.write_text('{"boards": [{"board_id": "weekly", "window": "weekly"}]}')
    done = run(["check"], tmp_path, SCOREBOARD_BOARDS_FILE=str(path))
    assert done.returncode == 0 and "no `global` all-time board" in done.stdout


def test_a_bad_rules_file_is_one_line_naming_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text('{"max_points_per_minute": 600, "auto_quarantine": "yes"}')
    for args, out in ((["check"], "stdout"), (["serve", "--port", "1"], "stderr")):
        done = run(args, tmp_path, SCOREBOARD_RULES_FILE=str(path))
        text = getattr(done, out)
        assert done.returncode == 2, text
        assert f"rules file {path}: field 'auto_quarantine': must be true or false" in text
        assert "Traceback" not in done.stdout + done.stderr
    done = run(["check"], tmp_path, SCOREBOARD_RULES_FILE=str(tmp_path / "missing.json"))
    assert done.returncode == 2 and "missing.json: cannot be read as JSON" in done.stdout
    path.write_text('{"max_points_per_minute": 100}')
    done = run(["check"], tmp_path, SCOREBOARD_RULES_FILE=str(path))
    assert done.returncode == 0, done.stdout
    assert "ok    rules: max_points_per_minute 100" in done.stdout


def test_version(tmp_path: Path) -> None:
    done = run(["--version"], tmp_path)
    assert done.returncode == 0
    assert done.stdout.strip() == f"scoreboard {__version__}"


def test_token_only_for_an_existing_account(tmp_path: Path) -> None:
    missing = run(["token", "alice"], tmp_path)
    assert missing.returncode == 1
    assert "no account with username 'alice'" in missing.stderr
    assert missing.stdout == ""
    import asyncio

    from scoreboard.backends import open_store
    from scoreboard.config import Settings

    async def create() -> str:
        store = await open_store(Settings(data_dir=tmp_path / "scoreboard-data"))
        try:
            user = await store.create_user("alice", None, "Alice")
        finally:
            await store.close()
        return user.user_id

    user_id = asyncio.run(create())
    made = run(["token", "alice"], tmp_path)
    assert made.returncode == 0, made.stderr
    import jwt

    claims = jwt.decode(made.stdout.strip(), options={"verify_signature": False})
    assert claims["sub"] == user_id
    by_id = run(["token", "--id", user_id], tmp_path)
    assert by_id.returncode == 0 and by_id.stdout.count(".") == 2
