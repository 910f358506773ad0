"""`scoreboard apikey create|revoke|list` and `scoreboard user promote|demote` (API.md
section 6): the operator's commands for trust, run against the database directly (no server
needed; a serving process sees a change within `SCOREBOARD_ACCOUNT_CACHE_SECONDS`)."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, TypeVar

import typer

from scoreboard.cli import console, require_database, settings
from scoreboard.domain.errors import DomainError
from scoreboard.domain.times import rfc3339
from scoreboard.store.base import Store

apikey_app = typer.Typer(help="API keys for the site's backend.", no_args_is_help=True)
user_app = typer.Typer(help="Accounts: the admin role.", no_args_is_help=True)
T = TypeVar("T")


def _with_store(work: Callable[[Store], Awaitable[T]]) -> T:
    """Run `work` on the configured (migrated) store; a refusal is one red line, exit 1."""
    from scoreboard.backends import open_store

    current = settings()
    require_database(current)

    async def run() -> T:
        store = await open_store(current)
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except DomainError as exc:
        console.print(f"[red]{exc.message}[/]", highlight=False)
        raise typer.Exit(1) from None


def _actor() -> str:
    """How the audit log names an operator at the command line."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else rfc3339(moment)


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Argument(help="1-64 of letters, digits, '_', '.', '-'.")],
    role: Annotated[str, typer.Option(help="scorer (server writes) or admin.")] = "scorer",
) -> None:
    """Create a key and print it ONCE (only its SHA-256 is stored)."""
    from scoreboard.service.apikeys import ApiKeys

    key, record = _with_store(lambda store: ApiKeys(store).create(name, role))
    console.print(f"API key {record.name!r} ({record.role}) created; it is shown once:")
    typer.echo(key)


@apikey_app.command("revoke")
def apikey_revoke(name: Annotated[str, typer.Argument()]) -> None:
    """Revoke a key: refused everywhere within SCOREBOARD_ACCOUNT_CACHE_SECONDS."""
    from scoreboard.service.apikeys import ApiKeys

    record = _with_store(lambda store: ApiKeys(store).revoke(name))
    typer.echo(f"revoked {record.name} at {_when(record.revoked_at)}")


@apikey_app.command("list")
def apikey_list() -> None:
    """Every key (never the key itself): name, role, created, revoked, last used."""
    from scoreboard.service.apikeys import ApiKeys

    records = _with_store(lambda store: ApiKeys(store).list())
    typer.echo("name\trole\tcreated\trevoked\tlast_used")
    for r in records:
        when = "\t".join(_when(m) for m in (r.created_at, r.revoked_at, r.last_used_at))
        typer.echo(f"{r.name}\t{r.role}\t{when}")


@user_app.command("promote")
def user_promote(
    username: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option(help="Kept in the admin audit log.")] = "",
) -> None:
    """Give the account the admin role (tokens issued from now on carry it)."""
    from scoreboard.service.roles import RoleService

    user = _with_store(
        lambda store: RoleService(store).promote(username, actor=_actor(), reason=reason)
    )
    typer.echo(f"{user.username} ({user.user_id}) is an admin")


@user_app.command("demote")
def user_demote(
    username: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option(help="Kept in the admin audit log.")] = "",
) -> None:
    """Withdraw the admin role (existing tokens lose it within the account cache's bound)."""
    from scoreboard.service.roles import RoleService

    user = _with_store(
        lambda store: RoleService(store).demote(username, actor=_actor(), reason=reason)
    )
    typer.echo(f"{user.username} ({user.user_id}) is not an admin")
