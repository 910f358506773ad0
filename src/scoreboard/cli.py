"""Command line: `scoreboard serve | migrate | reindex | token | check | demo`, and
`apikey` and `user` (`scoreboard.cli_admin`).

Every command reads its settings through `settings()`: a bad value is one line naming the
variable and exit status 2, an unknown `SCOREBOARD_*` variable a warning (see
`scoreboard.configuration`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from scoreboard import __version__
from scoreboard.config import Settings
from scoreboard.configuration import (
    ConfigError,
    database_problem,
    load_settings,
    unknown_variables,
)
from scoreboard.domain.errors import ServiceUnavailable
from scoreboard.redact import redact_url
from scoreboard.store.base import Store, UserRecord

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from scoreboard.metrics import Metrics
    from scoreboard.realtime.base import RankIndexes

app = typer.Typer(help="Real-time leaderboard service.", no_args_is_help=True)
console = Console(stderr=True)
CONFIG_ERROR = 2  # the exit status of a configuration that cannot be used


def settings() -> Settings:
    """The settings, or the configuration's problems printed one per line and exit 2."""
    for line in unknown_variables():
        console.print(f"[yellow]warning:[/] {line}", soft_wrap=True, highlight=False)
    try:
        return load_settings()
    except ConfigError as exc:
        for line in exc.lines:
            console.print(f"[red]configuration error:[/] {line}", soft_wrap=True, highlight=False)
        raise typer.Exit(CONFIG_ERROR) from None


def require_database(current: Settings) -> None:
    """Exit 2 with one line when the database cannot be used (e.g. it does not exist yet)."""
    from scoreboard.backends import normalize_database_url

    try:
        url = normalize_database_url(current.resolved_database_url())
    except ValueError as exc:
        console.print(f"[red]configuration error:[/] SCOREBOARD_DATABASE_URL: {exc}")
        raise typer.Exit(CONFIG_ERROR) from None
    problem = asyncio.run(database_problem(url, current.db_timeout_seconds))
    if problem is not None:
        console.print(f"[red]database:[/] {problem}", soft_wrap=True, highlight=False)
        raise typer.Exit(CONFIG_ERROR)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"scoreboard {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Real-time leaderboard service."""


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    proxy_headers: Annotated[
        bool, typer.Option(help="Trust X-Forwarded-For from --forwarded-allow-ips.")
    ] = False,
    forwarded_allow_ips: Annotated[str, typer.Option()] = "127.0.0.1",
    workers: Annotated[
        str,
        typer.Option(
            help="Server processes sharing the port: a number, or auto (or 0) for one per "
            "CPU. More than one needs PostgreSQL + Redis (docs/SCALING.md)."
        ),
    ] = "1",
) -> None:
    """Run the service (migrates the database first)."""
    from scoreboard import logs
    from scoreboard.single import AlreadyServing, check_alone
    from scoreboard.transport.serve import ServeOptions, run, run_workers
    from scoreboard.transport.workers import resolve_count

    current = settings()
    logs.configure(log_level, current.log_format)
    try:
        count = resolve_count(workers)
    except ValueError:
        console.print(f"[red]scoreboard serve:[/] --workers {workers}: a number, 0 or auto")
        raise typer.Exit(2) from None
    options = ServeOptions(
        host, port, log_level, proxy_headers, forwarded_allow_ips, count, current.log_format
    )
    if not current.redis_url:
        if count > 1:
            console.print(_EMBEDDED_WORKERS.format(count=count), soft_wrap=True)
            raise typer.Exit(2)
        shown = redact_url(current.resolved_database_url())
        console.print(f"[bold]scoreboard[/] embedded mode: {shown}", soft_wrap=True)
    require_database(current)
    if count > 1:

        def serving(pids: list[int]) -> None:
            pid_list = ", ".join(map(str, pids))
            console.print(f"scoreboard: {count} workers serving on {host}:{port} (pids {pid_list})")

        raise typer.Exit(run_workers(_serving_app, options, serving))
    try:
        check_alone(current)
    except AlreadyServing as exc:
        console.print(f"[red]scoreboard serve refused:[/] {exc}", soft_wrap=True)
        raise typer.Exit(3) from None
    api, current, metrics = _serving_app(current)
    run(api, current, metrics, options)


_EMBEDDED_WORKERS = (
    "[red]scoreboard serve refused:[/] --workers {count} needs PostgreSQL + Redis "
    "(SCOREBOARD_DATABASE_URL=postgresql://..., SCOREBOARD_REDIS_URL=redis://...): the embedded "
    "mode keeps its rank index, live updates and rate limits in ONE process (docs/SCALING.md)."
)


def _serving_app(settings: Settings | None = None) -> tuple[ASGIApp, Settings, Metrics]:
    """The app `serve` runs, with its settings and metrics (in each worker with --workers)."""
    from scoreboard.app import create_app

    settings = settings or load_settings()
    api = create_app(settings)
    return api, settings, api.state.metrics


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    from scoreboard.backends import normalize_database_url
    from scoreboard.store.migrate import run_migrations

    current = settings()
    require_database(current)
    url = normalize_database_url(current.resolved_database_url())
    asyncio.run(run_migrations(url))
    console.print("schema is up to date")


@app.command()
def reindex(
    wait: Annotated[
        float, typer.Option(help="Seconds to wait while another process is rebuilding.")
    ] = 60.0,
    scope: Annotated[
        str | None, typer.Option(help="One board (default: every board of the catalogue).")
    ] = None,
    index_only: Annotated[
        bool,
        typer.Option(
            "--index-only",
            help="Only rebuild the rank indexes from the boards' rows (skip the recompute "
            "from the event log).",
        ),
    ] = False,
) -> None:
    """Recompute the boards from the event log, then rebuild the rank indexes (Redis, when
    configured) from the database. The total board (`global`) is each user's total score,
    kept in the same transaction as every event: only its index is rebuilt."""
    current = settings()
    require_database(current)
    catalogue = current.board_catalogue()
    if scope is not None and scope not in catalogue:
        console.print(
            f"[red]unknown board {scope!r}; known: {sorted(b.board_id for b in catalogue)}[/]"
        )
        raise typer.Exit(2)
    if not current.redis_url:
        console.print(
            "no SCOREBOARD_REDIS_URL: the in-process index is rebuilt by every `serve` at "
            "start-up; checking the database only"
        )
    count = asyncio.run(_reindex(current, wait=wait, scope=scope, from_log=not index_only))
    if count is None:
        console.print("[red]another process kept rebuilding the index; try again later[/]")
        raise typer.Exit(1)
    console.print(f"indexed {count} entries (every user on every view of the boards rebuilt)")


async def _reindex(
    settings: Settings, *, wait: float = 60.0, scope: str | None = None, from_log: bool = True
) -> int | None:
    """Recompute the boards' rows from the log, then rebuild their indexes as the service does
    (lock, grace for the serving processes to defer their updates, swap, publish), with a
    progress bar. None if a lock stayed taken `wait` s."""
    from scoreboard.backends import open_backends
    from scoreboard.service.leaderboard import LeaderboardService

    backends = await open_backends(settings, backfill=False)
    try:
        for board_def in backends.boards if from_log else ():
            if not board_def.is_total and scope in (None, board_def.board_id):
                rows = await backends.store.rebuild_board(board_def.board_id)
                console.print(f"board {board_def.board_id}: {rows} rows recomputed from the log")
        board = LeaderboardService(
            backends.store,
            backends.indexes,
            backends.broker,
            catalogue=backends.boards,
            check_seconds=settings.index_check_seconds,
        )
        # Counted while the rebuild runs: a count of a big board takes seconds of its own.
        counting = asyncio.create_task(_board_size(backends.store))
        deadline = asyncio.get_running_loop().time() + wait
        with Progress(
            TextColumn("reindex"), BarColumn(), MofNCompleteColumn(), console=console
        ) as progress:
            task = progress.add_task("users", total=None)

            def show_total(done: asyncio.Task[int | None]) -> None:
                if not done.cancelled():
                    progress.update(task, total=done.result())

            counting.add_done_callback(show_total)
            try:
                while True:
                    progress.reset(task)
                    count = await board.rebuild(
                        on_page=lambda n: progress.advance(task, n), scope=scope
                    )
                    if count is not None:
                        progress.update(task, total=count, completed=count)
                        await _drop_the_others(backends.indexes, board.live_keys(), scope)
                    if count is not None or asyncio.get_running_loop().time() >= deadline:
                        return count
                    await asyncio.sleep(0.5)
            finally:
                counting.cancel()
    finally:
        await backends.close()


async def _drop_the_others(indexes: RankIndexes, rebuilt: set[str], scope: str | None) -> None:
    """The views this command did not rebuild (previous periods, regions) are dropped from the
    shared index: every serving process then sees them lost and rebuilds them from the rows
    just recomputed, instead of serving what the index held before."""
    from scoreboard.domain.boards import View

    def keep(key: str) -> bool:
        return key in rebuilt or (scope is not None and View.from_key(key).board_id != scope)

    dropped = await indexes.sweep(keep)
    if dropped:
        console.print(f"{len(dropped)} other views dropped: serving processes rebuild them")


async def _board_size(store: Store) -> int | None:
    """The board's size for the progress bar, or None (an open-ended bar) when counting it
    fails: a slow count must not stop the rebuild, which reads the board anyway."""
    try:
        return (await store.standings_page(0, 0))[1]
    except ServiceUnavailable:
        return None


@app.command()
def token(
    username: Annotated[str, typer.Argument(help="Username of an existing account.")],
    by_id: Annotated[
        bool, typer.Option("--id", help="The argument is a user id, not a username.")
    ] = False,
) -> None:
    """Print a bearer token for an existing account (operators and tests)."""
    from scoreboard.service.tokens import TokenIssuer, load_or_create_secret

    current = settings()
    require_database(current)
    user = asyncio.run(_existing_user(current, username, by_id=by_id))
    if user is None:
        kind = "user id" if by_id else "username"
        console.print(f"[red]no account with {kind} {username!r}[/]", highlight=False)
        raise typer.Exit(1)
    issuer = TokenIssuer.from_settings(current, load_or_create_secret(current))
    typer.echo(issuer.issue(user.user_id, user.roles)[0])


async def _existing_user(current: Settings, name: str, *, by_id: bool) -> UserRecord | None:
    """A live (not deleted) account, or None."""
    from scoreboard.backends import open_store

    store = await open_store(current)
    try:
        user = await (store.get_user(name) if by_id else store.get_user_by_username(name))
    finally:
        await store.close()
    return user if user is not None and user.active else None


@app.command()
def check() -> None:
    """Validate the configuration and reach every backend once; print what was found.
    Exit 0 when the service can start with it, 1 when not, 2 for a bad setting."""
    from scoreboard.check import run_check

    warnings = unknown_variables()
    try:
        current = load_settings()
    except ConfigError as exc:
        for line in warnings:
            typer.echo(f"warn  {line}")
        for line in exc.lines:
            typer.echo(f"FAIL  {line}")
        typer.echo("NOT ready to serve")
        raise typer.Exit(CONFIG_ERROR) from None
    report = asyncio.run(run_check(current, warnings))
    for line in report.lines:
        typer.echo(line)
    typer.echo("ready to serve" if report.ok else "NOT ready to serve")
    if not report.ok:
        raise typer.Exit(1)


def main() -> None:
    app()


# Last: the sub-commands use this module's `settings` and `require_database`.
from scoreboard.cli_admin import apikey_app, user_app  # noqa: E402

app.add_typer(apikey_app, name="apikey")
app.add_typer(user_app, name="user")


@app.command()
def demo(
    url: Annotated[str, typer.Option(help="Base URL of a running service.")] = (
        "http://127.0.0.1:8000"
    ),
    users: Annotated[int, typer.Option(min=1, max=1000, help="Demo users demo-1 … demo-N.")] = 12,
    rate: Annotated[float, typer.Option(min=0.01, help="Score events per second in total.")] = 5.0,
    duration: Annotated[float, typer.Option(min=0.1, help="Seconds to run.")] = 60.0,
    seed: Annotated[int | None, typer.Option(help="Random seed, for a repeatable run.")] = None,
) -> None:
    """Create demo users and drive realistic activity against a running service."""
    from scoreboard.demo import DemoError, run_demo

    try:
        asyncio.run(run_demo(url, users, rate, duration, seed=seed))
    except DemoError as exc:
        console.print(f"[red]demo failed:[/] {exc}")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        console.print("demo interrupted")
        raise typer.Exit(130) from None
