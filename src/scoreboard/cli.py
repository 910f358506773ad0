"""Command line: `scoreboard serve | migrate | reindex | token`."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from scoreboard.config import Settings
from scoreboard.domain.errors import ServiceUnavailable
from scoreboard.store.base import Store

app = typer.Typer(help="Real-time leaderboard service.", no_args_is_help=True)
console = Console(stderr=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    proxy_headers: Annotated[
        bool, typer.Option(help="Trust X-Forwarded-For from --forwarded-allow-ips.")
    ] = False,
    forwarded_allow_ips: Annotated[str, typer.Option()] = "127.0.0.1",
) -> None:
    """Run the service (migrates the database first)."""
    from scoreboard.app import create_app
    from scoreboard.single import AlreadyServing, check_alone
    from scoreboard.transport.serve import ServeOptions, run

    settings = Settings()
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not settings.redis_url:
        console.print(f"[bold]scoreboard[/] embedded mode: {settings.resolved_database_url()}")
    try:
        check_alone(settings)
    except AlreadyServing as exc:
        console.print(f"[red]scoreboard serve refused:[/] {exc}", soft_wrap=True)
        raise typer.Exit(3) from None
    api = create_app(settings)
    options = ServeOptions(host, port, log_level, proxy_headers, forwarded_allow_ips)
    run(api, settings, api.state.metrics, options)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    from scoreboard.backends import normalize_database_url
    from scoreboard.store.migrate import run_migrations

    url = normalize_database_url(Settings().resolved_database_url())
    asyncio.run(run_migrations(url))
    console.print("schema is up to date")


@app.command()
def reindex(
    wait: Annotated[
        float, typer.Option(help="Seconds to wait while another process is rebuilding.")
    ] = 60.0,
) -> None:
    """Rebuild the rank index (Redis, when configured) from the database."""
    settings = Settings()
    if not settings.redis_url:
        console.print(
            "no SCOREBOARD_REDIS_URL: the in-process index is rebuilt by every `serve` at "
            "start-up; checking the database only"
        )
    count = asyncio.run(_reindex(settings, wait=wait))
    if count is None:
        console.print("[red]another process kept rebuilding the index; try again later[/]")
        raise typer.Exit(1)
    console.print(f"indexed {count} users")


async def _reindex(settings: Settings, *, wait: float = 60.0) -> int | None:
    """Rebuild as the service does (lock, grace for the serving processes to defer their
    updates, swap, publish), with a progress bar. None if the lock stayed taken `wait` s."""
    from scoreboard.backends import open_backends
    from scoreboard.service.leaderboard import LeaderboardService

    backends = await open_backends(settings)
    try:
        board = LeaderboardService(
            backends.store,
            backends.index,
            backends.broker,
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
                    count = await board.rebuild(on_page=lambda n: progress.advance(task, n))
                    if count is not None:
                        progress.update(task, total=count, completed=count)
                    if count is not None or asyncio.get_running_loop().time() >= deadline:
                        return count
                    await asyncio.sleep(0.5)
            finally:
                counting.cancel()
    finally:
        await backends.close()


async def _board_size(store: Store) -> int | None:
    """The board's size for the progress bar, or None (an open-ended bar) when counting it
    fails: a slow count must not stop the rebuild, which reads the board anyway."""
    try:
        return (await store.standings_page(0, 0))[1]
    except ServiceUnavailable:
        return None


@app.command()
def token(user_id: Annotated[str, typer.Argument(help="User id to issue a token for.")]) -> None:
    """Print a bearer token for a user (operators and tests)."""
    from scoreboard.service.tokens import TokenIssuer, load_or_create_secret

    settings = Settings()
    issuer = TokenIssuer.from_settings(settings, load_or_create_secret(settings))
    typer.echo(issuer.issue(user_id)[0])


def main() -> None:
    app()


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
