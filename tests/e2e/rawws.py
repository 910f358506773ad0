"""A WebSocket client on a raw socket that reads only when told to: the client that stops
reading, with a receive buffer as small as the kernel allows, so the server's buffers fill."""

from __future__ import annotations

import base64
import os
import socket
import struct
from dataclasses import dataclass


@dataclass
class Frame:
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int:
        return int(struct.unpack("!H", self.payload[:2])[0]) if len(self.payload) >= 2 else 1005


class RawWebSocket:
    def __init__(self, host: str, port: int, path: str, receive_buffer: int = 1024) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Before connect, so the window the client advertises starts small.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(10)
        self.sock.connect((host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self._buffer = b""
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += self._recv()
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the server closed the socket")
        return chunk

    def _need(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._buffer += self._recv()
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def read_frame(self) -> Frame:
        first, second = self._need(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._need(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._need(8))[0]
        return Frame(first & 0x0F, self._need(length))

    def read_until_close(self) -> tuple[list[Frame], Frame | None]:
        """Every frame up to the close frame (None when the socket ended without one)."""
        frames: list[Frame] = []
        try:
            while True:
                frame = self.read_frame()
                if frame.opcode == 0x8:
                    return frames, frame
                frames.append(frame)
        except (EOFError, ConnectionError):
            return frames, None

    def close(self) -> None:
        self.sock.close()
