"""The fast upstream every proxy in the benchmark forwards to.

A raw asyncio protocol (on uvloop when installed) that answers every request
with ``200 ok``, keep-alive, so the upstream is never what limits a proxy:
it parses only what it must (the end of the head, Content-Length, and
``Connection: close``) and builds no objects per request.

    python bench/upstream.py --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
import signal

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Server: bench-upstream\r\n\r\nok"
)


class Upstream(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.WriteTransport | None = None
        self.buffer = b""
        self.body_left = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they quack like one.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self._one_request():
            pass

    def _one_request(self) -> bool:
        """Answer one complete request from the buffer; False when it holds none."""
        if self.body_left:
            taken = min(self.body_left, len(self.buffer))
            self.body_left -= taken
            self.buffer = self.buffer[taken:]
            if self.body_left:
                return False
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head, self.buffer = self.buffer[:end].lower(), self.buffer[end + 4 :]
        self.body_left = _content_length(head)
        assert self.transport is not None
        self.transport.write(RESPONSE)
        if b"\r\nconnection: close" in head:
            self.transport.close()
            return False
        return True


def _content_length(head: bytes) -> int:
    marker = head.find(b"\r\ncontent-length:")
    if marker < 0:
        return 0
    line_end = head.find(b"\r\n", marker + 2)
    value = head[marker + 17 : line_end if line_end >= 0 else None]
    return int(value.strip() or 0)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, host, port, reuse_address=True, backlog=1024)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port))
    else:
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
