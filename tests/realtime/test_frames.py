"""`TextFrame.data` is exactly the frame websockets builds for a server's text message, at
every length encoding (7-bit, 16-bit and 64-bit lengths)."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from scoreboard.realtime.frames import TextFrame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_frame_bytes_match_websockets(size: int) -> None:
    text = "é" * (size // 4) + "x" * (size - 2 * (size // 4))  # `size` bytes of UTF-8
    assert len(text.encode()) == size
    expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
    assert TextFrame(text).data == expected
