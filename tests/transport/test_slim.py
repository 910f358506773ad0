"""The per-connection stand-ins behave as the asyncio classes do where uvicorn uses them."""

from __future__ import annotations

import asyncio

import pytest

from scoreboard.transport.slim import Flag, Inbox


async def test_inbox_is_fifo_and_wakes_its_waiting_consumer() -> None:
    inbox: Inbox[int] = Inbox()
    assert inbox.empty()
    getting = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not getting.done()
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert await asyncio.wait_for(getting, 1) == 1
    assert not inbox.empty()
    assert await inbox.get() == 2
    assert inbox.empty()


async def test_inbox_get_cancelled_leaves_the_inbox_usable() -> None:
    inbox: Inbox[str] = Inbox()
    getting = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    getting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getting
    inbox.put_nowait("x")
    assert await asyncio.wait_for(inbox.get(), 1) == "x"


async def test_flag_starts_set_and_wakes_every_waiter_when_set_again() -> None:
    flag = Flag()
    assert flag.is_set()
    assert await flag.wait()
    flag.clear()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 1) == [True, True, True]
    cancelled = asyncio.create_task((flag.clear(), flag.wait())[1])
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    flag.set()
    assert flag.is_set()
