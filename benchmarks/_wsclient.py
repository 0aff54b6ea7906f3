"""A minimal RFC 6455 client for loopback load generation (text frames, no extensions).

The ``websockets`` client spends ~0.3 ms of CPU per message in coroutine machinery
(a task per connection, futures per ``recv``); a load generator driving thousands of
sockets on the machine it measures would then measure itself. This one is an
``asyncio.Protocol``: a frame is parsed in ``data_received`` and handed to a callback
with the time it arrived. Client frames are masked with a random key, as the RFC
requires; server frames are unmasked. Fragmented messages are not expected (the API
sends each message as one frame) and are refused.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from collections.abc import Callable
from typing import cast

#: on_message(text, arrival time.time()); on_close(close code or None).
OnMessage = Callable[[str, float], None]

_TEXT, _CLOSE, _PING, _PONG = 0x1, 0x8, 0x9, 0xA


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return payload
    keys = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(keys, "big")).to_bytes(n, "big")


def frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame (masked)."""
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + key + _mask(payload, key)


class WsClient(asyncio.Protocol):
    """One client WebSocket; ``open`` performs the handshake."""

    def __init__(self, on_message: OnMessage) -> None:
        self._on_message = on_message
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._handshake: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._opened = False
        self.closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._on_lost: list[Callable[[], None]] = []

    @classmethod
    async def open(cls, port: int, path: str, on_message: OnMessage) -> WsClient:
        """Connect to ``ws://127.0.0.1:{port}{path}``; raises ``ConnectionError`` unless 101."""
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_connection(lambda: cls(on_message), "127.0.0.1", port)
        proto._transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        status = await proto._handshake
        if status != 101:
            proto.abort()
            raise ConnectionError(f"handshake answered {status}")
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        now = time.time()  # before any parsing: the message's arrival
        self._buf += data
        if not self._opened:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = int(bytes(self._buf[: self._buf.find(b"\r\n")]).split(b" ", 2)[1])
            del self._buf[: end + 4]
            self._opened = True
            if not self._handshake.done():
                self._handshake.set_result(status)
            if status != 101:
                return
        self._frames(now)

    def _frames(self, now: float) -> None:
        buf = self._buf
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            n, at = b1 & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, at = struct.unpack_from("!H", buf, 2)[0], 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, at = struct.unpack_from("!Q", buf, 2)[0], 10
            if len(buf) < at + n:
                return
            payload = bytes(buf[at : at + n])
            del buf[: at + n]
            opcode = b0 & 0x0F
            if not b0 & 0x80:
                raise ValueError("fragmented frames are not supported")
            if opcode == _TEXT:
                self._on_message(payload.decode(), now)
            elif opcode == _PING:
                self._write(frame(_PONG, payload))
            elif opcode == _CLOSE:
                code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else None
                self._write(frame(_CLOSE, payload[:2]))
                self._finish(code)
                if self._transport is not None:
                    self._transport.close()
                return

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _finish(self, code: int | None) -> None:
        if not self.closed.done():
            self.closed.set_result(code)

    def send(self, text: str) -> None:
        """Send one text message."""
        if self._transport is None or self._transport.is_closing():
            raise ConnectionError("the socket is closed")
        self._transport.write(frame(_TEXT, text.encode()))

    def close(self) -> None:
        """Start a normal close (1000); ``closed`` resolves when the server answers."""
        self._write(frame(_CLOSE, struct.pack("!H", 1000)))

    def abort(self) -> None:
        """Drop the connection."""
        if self._transport is not None:
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._handshake.done():
            self._handshake.set_exception(ConnectionError("closed during the handshake"))
        self._finish(None)
        for callback in self._on_lost:
            callback()

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the connection is gone (e.g. to fail what waits on it)."""
        self._on_lost.append(callback)
