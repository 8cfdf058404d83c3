"""What one upstream answer says, as llhttp parses it: status, headers, body chunks.

``ResponseParser`` holds the state of one exchange's answer and the callbacks
llhttp (through httptools) calls as bytes are fed to it. It does no I/O: the
connection that feeds it (``sidecar.proxy.http1client.Connection``) owns the
socket, the waits and their timeouts, and is told through ``_wake`` that
there is something new, and through ``_pause_reading`` that too much body waits.

- informational answers (1xx) are skipped, the final answer follows;
- a second answer to one request, or an answer's head over
  ``MAX_HEAD_BYTES``, stops the parser (the callback raises, which llhttp
  reports as ``HttpParserCallbackError``);
- a body delimited by the connection's close (RFC 9112 section 6.3) is
  complete only when the connection closes (``until_close``);
- llhttp cannot be told a request was HEAD, so an answer to one ends with its head.
"""

from __future__ import annotations

import collections

import httptools

RawHeaders = list[tuple[bytes, bytes]]

#: The most an answer's status line and headers may take (llhttp sets no bound of
#: its own; aiohttp's client allowed 8,190 bytes a line).
MAX_HEAD_BYTES = 64 * 1024
#: Stop reading from the upstream while this much of its body waits for the client.
HIGH_WATER = 256 * 1024


class Unsolicited(Exception):
    """Bytes after a complete answer, before any next request."""


class HeadTooLarge(Exception):
    """An answer's status line and headers over ``MAX_HEAD_BYTES``."""


class ResponseParser:
    """One exchange's answer at a time; a base of the connection that feeds it.

    A base class rather than a member: llhttp calls these methods on every
    read, and the connection reads what they set, so one object saves an
    attribute hop each way on the hot path.
    """

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._head_bytes = 0
        self._begin(head_only=False)
        self.complete = True  # nothing asked yet: any byte now is unsolicited

    def _begin(self, *, head_only: bool) -> None:
        self.status = 0
        self.reason = b""
        self.headers: RawHeaders = []
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self._head_only = head_only
        self._until_close = False
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0

    def _wake(self) -> None:
        """Something new arrived: the head, a body chunk, or the answer's end."""
        raise NotImplementedError

    def _pause_reading(self) -> None:
        """More than ``HIGH_WATER`` bytes of body wait for the client."""
        raise NotImplementedError

    def ready_body(self) -> bytes | None:
        """The whole body when it has already arrived (the common, small case), else None."""
        if not self.complete:
            return None
        body = b"".join(self._chunks)
        self._chunks.clear()
        return body

    # -- llhttp callbacks ------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            raise Unsolicited  # a second answer to one request: stop parsing here
        self.reason = b""
        self.headers = []
        self._head_bytes = 0

    def on_status(self, fragment: bytes) -> None:
        self.reason += fragment
        self._count_head(len(fragment))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self._count_head(len(name) + len(value))

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLarge

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            return  # informational; the final answer follows (llhttp expects no body)
        self.status = status
        self.keep_alive = self._parser.should_keep_alive()
        self._until_close = not self.keep_alive and not any(
            name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self.headers
        )
        self.head_done = True
        if self._head_only:
            # llhttp cannot be told the request was HEAD and would wait for the
            # announced body: end here, and never reuse this connection.
            self.complete, self.keep_alive, self._until_close = True, False, False
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER:
            self._pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.head_done or self.complete:
            return  # the end of a 1xx, or the rest of a HEAD's answer
        self.complete = True
        self._wake()
