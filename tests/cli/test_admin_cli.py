"""`scoreboard apikey create|revoke|list` and `scoreboard user promote|demote`, as real
processes on the embedded default (a SQLite file under the working directory)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import sqlite3
from pathlib import Path

import jwt
from tests.cli.test_configuration import run

from scoreboard.backends import open_store
from scoreboard.config import Settings


def database(tmp_path: Path) -> Path:
    return tmp_path / "scoreboard-data" / "scoreboard.db"


def create_user(tmp_path: Path, username: str) -> str:
    async def create() -> str:
        store = await open_store(Settings(data_dir=tmp_path / "scoreboard-data"))
        try:
            return (await store.create_user(username, None, username)).user_id
        finally:
            await store.close()

    return asyncio.run(create())


def test_a_key_is_printed_once_and_stored_hashed(tmp_path: Path) -> None:
    made = run(["apikey", "create", "backend"], tmp_path)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert re.fullmatch(r"sbk_[A-Za-z0-9_-]{43}", key), made.stdout
    assert "shown once" in made.stderr and key not in made.stderr
    with sqlite3.connect(database(tmp_path)) as conn:
        rows = conn.execute("SELECT name, role, key_hash FROM api_keys").fetchall()
        dump = "\n".join(conn.iterdump())
    assert rows == [("backend", "scorer", hashlib.sha256(key.encode()).hexdigest())]
    assert key not in dump and key[4:] not in dump  # nowhere in the database
    listed = run(["apikey", "list"], tmp_path)
    assert listed.returncode == 0 and key not in listed.stdout
    header, line = listed.stdout.strip().splitlines()
    assert header.split("\t") == ["name", "role", "created", "revoked", "last_used"]
    name, role, created, revoked, last_used = line.split("\t")
    assert (name, role, revoked, last_used) == ("backend", "scorer", "-", "-")
    assert created.endswith("Z")


def test_create_refuses_a_taken_name_and_a_bad_role(tmp_path: Path) -> None:
    assert run(["apikey", "create", "ops", "--role", "admin"], tmp_path).returncode == 0
    again = run(["apikey", "create", "ops"], tmp_path)
    assert again.returncode == 1 and again.stdout == ""
    assert "exists" in again.stderr
    bad = run(["apikey", "create", "other", "--role", "root"], tmp_path)
    assert bad.returncode == 1 and "scorer, admin" in bad.stderr and bad.stdout == ""
    named = run(["apikey", "create", "no spaces"], tmp_path)
    assert named.returncode == 1 and named.stdout == ""
    listed = run(["apikey", "list"], tmp_path).stdout.strip().splitlines()[1:]
    assert [line.split("\t")[:2] for line in listed] == [["ops", "admin"]]


def test_revoke(tmp_path: Path) -> None:
    assert run(["apikey", "create", "backend"], tmp_path).returncode == 0
    revoked = run(["apikey", "revoke", "backend"], tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.startswith("revoked backend at ")
    [line] = run(["apikey", "list"], tmp_path).stdout.strip().splitlines()[1:]
    assert line.split("\t")[3].endswith("Z")
    missing = run(["apikey", "revoke", "nope"], tmp_path)
    assert missing.returncode == 1 and "No API key named 'nope'" in missing.stderr


def test_promote_and_demote(tmp_path: Path) -> None:
    missing = run(["user", "promote", "alice"], tmp_path)
    assert missing.returncode == 1 and "alice" in missing.stderr
    user_id = create_user(tmp_path, "alice")
    promoted = run(["user", "promote", "alice", "--reason", "site owner"], tmp_path)
    assert promoted.returncode == 0, promoted.stderr
    assert promoted.stdout.strip() == f"alice ({user_id}) is an admin"
    token = run(["token", "alice"], tmp_path).stdout.strip()
    assert jwt.decode(token, options={"verify_signature": False})["roles"] == ["admin"]
    demoted = run(["user", "demote", "alice"], tmp_path)
    assert demoted.returncode == 0 and "is not an admin" in demoted.stdout
    token = run(["token", "alice"], tmp_path).stdout.strip()
    assert "roles" not in jwt.decode(token, options={"verify_signature": False})
    with sqlite3.connect(database(tmp_path)) as conn:
        audit = conn.execute(
            "SELECT actor, action, target, reason FROM admin_audit ORDER BY audit_id"
        ).fetchall()
        roles = conn.execute("SELECT roles FROM users").fetchall()
    assert [row[1:] for row in audit] == [
        ("promote", user_id, "site owner"),
        ("demote", user_id, ""),
    ]
    assert all(row[0].startswith("cli") for row in audit)
    assert roles == [("",)]
