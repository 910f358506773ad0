"""`TextFrame`: one live message, encoded once, in the form every socket sends it.

A board change goes to thousands of sockets as the same bytes, so the hub builds the complete
WebSocket frame (RFC 6455 section 5.2: FIN and the text opcode, the payload length, the UTF-8
payload; a server's frames are not masked) once per change, and a connection whose server can
take a pre-built frame (`serve`'s WebSocket protocol, see `transport/websocket.py`) writes
those bytes to its socket as they are: no per-socket encoding, framing or ASGI message. Any
other server is given `text` through ASGI. Only for connections without extensions (serve
turns permessage-deflate off, so no live connection has one).
"""

from __future__ import annotations

import struct
from typing import Protocol

_FIN_TEXT = 0x81


class TextFrame:
    """`text` and its unmasked WebSocket frame `data`."""

    __slots__ = ("data", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.data = encode_text_frame(text)

    def __repr__(self) -> str:
        return f"TextFrame({self.text!r})"


class FrameSink(Protocol):
    """What a server may offer under the ASGI extension `FRAME_SINK` of a WebSocket scope
    (`serve`'s protocol does, `transport/websocket.py`; `api/ws.py` uses it when offered):
    pre-built frames written to the socket as they are, bypassing the per-message ASGI send.
    Offered only on connections without extensions, whose frames are exactly `TextFrame.data`."""

    def write_frame(self, data: bytes) -> bool:
        """Write one complete frame now if the socket takes it without waiting; False when
        it would have to wait (then `wait_writable`). Raises once the connection is gone."""
        ...

    async def wait_writable(self) -> None:
        """Until the socket takes frames again (or the connection is gone)."""
        ...


FRAME_SINK = "scoreboard.frame_sink"


def encode_text_frame(text: str) -> bytes:
    payload = text.encode()
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", _FIN_TEXT, size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", _FIN_TEXT, 126, size)
    else:
        head = struct.pack("!BBQ", _FIN_TEXT, 127, size)
    return head + payload


def frames(texts: list[str]) -> list[TextFrame]:
    """A dialect's messages as frames (once per change, shared by every socket it goes to)."""
    return [TextFrame(text) for text in texts]
