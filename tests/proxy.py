"""A small asyncio TCP proxy that fault tests put between a client and a real server.

Protocol-agnostic (Redis, PostgreSQL, HTTP...): it forwards bytes both ways and lets a test
break the link in the ways networks break:

- `cut()`: reset every open connection (the server "restarted" or a NAT dropped state);
  new connections are still accepted and forwarded.
- `refuse()`: reset every open connection and stop listening, so new connections get
  "connection refused" (the server is down).
- `blackhole()`: stop forwarding in both directions but keep every connection open, and accept
  new connections without connecting them upstream (a network partition: clients see
  nothing, only their own timeouts tell them).
- `restore()`: undo any of the above: listen again on the same port, resume forwarding
  (bytes held during a black hole are delivered then, as TCP would retransmit them).

Usage::

    async with TcpProxy("127.0.0.1", 6379) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        ...
        await proxy.refuse()
        ...
        await proxy.restore()

One proxy serves any number of client connections; each gets its own upstream connection.
When either side of a pair closes, the proxy closes both.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

_CHUNK = 64 * 1024


class TcpProxy:
    """Forwards `host:port` (port 0: a free one, see `port`) to `upstream_host:upstream_port`."""

    def __init__(
        self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The listening port (stable across `refuse` / `restore`)."""
        return self._port

    @property
    def connections(self) -> int:
        """How many client connections are open now."""
        return len(self._connections)

    async def start(self) -> TcpProxy:
        """Start listening; returns self."""
        await self._listen()
        return self

    async def close(self) -> None:
        """Stop listening and reset every connection."""
        await self._stop_listening()

    async def cut(self) -> None:
        """Reset every open connection; keep accepting new ones."""
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def refuse(self) -> None:
        """Reset every open connection and refuse new ones until `restore`."""
        await self._stop_listening()

    def blackhole(self) -> None:
        """Hold all traffic, both ways, on open and new connections until `restore`."""
        self._flowing.clear()

    async def restore(self) -> None:
        """Listen again if refused, and resume forwarding if black-holed."""
        if self._server is None:
            await self._listen()
        self._flowing.set()

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _listen(self) -> None:
        # reuse_address (the default on Unix) lets `restore` bind the same port again.
        self._server = await asyncio.start_server(self._serve, self.host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        # Cut before waiting: since Python 3.12 `wait_closed` also waits for open connections.
        await self.cut()
        if server is not None:
            await server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        upstream_w: asyncio.StreamWriter | None = None
        try:
            await self._flowing.wait()
            upstream_r, upstream_w = await asyncio.open_connection(*self.upstream)
            pumps = [
                asyncio.create_task(self._pump(client_r, upstream_w)),
                asyncio.create_task(self._pump(upstream_r, client_w)),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except (OSError, asyncio.CancelledError):
            pass  # upstream down, or cut: the client sees its connection reset
        finally:
            self._connections.discard(task)
            for writer in (client_w, upstream_w):
                if writer is not None:
                    writer.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(_CHUNK):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()


def upstream(url: str, default_port: int) -> tuple[str, int]:
    """The (host, port) a service URL names: what a proxy in front of it forwards to."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def via(url: str, proxy: TcpProxy) -> str:
    """`url` with its host and port replaced by the proxy's (credentials kept)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"{proxy.host}:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))
