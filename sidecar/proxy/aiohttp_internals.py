"""Every reliance of Keystile on aiohttp beyond its documented API, in one module.

aiohttp offers no public hook for any of what follows; each is the smallest
reach into its internals that does the job. Nothing else in Keystile reads an
underscored aiohttp name, and tests/test_aiohttp_internals.py fails when an
aiohttp upgrade moves one of them (written against aiohttp 3.14):

1. ``RequestHandler._messages`` (the queue of parsed request heads, with
   ``_ErrInfo`` as its entry for a parse error), ``_waiter`` (what the
   handler's loop waits on for the next head) and ``_request_count``: the
   listener looks at each head as it is parsed (its HTTP version), times a
   head that arrives in pieces, and queues its own refusals (408, 505,
   HTTP/0.9) the way aiohttp queues a parse error, so aiohttp's own path
   answers them and closes the connection (``HookedRequestHandler``).
2. ``RequestHandler._manager = None`` on a connection refused past
   ``max_connections``: aiohttp's ``connection_lost`` then does not unregister
   a connection it never registered.
3. ``BaseProtocol._loop``: the handler's loop, without the ``getpid()`` that
   ``asyncio.get_running_loop()`` costs on Python 3.11.
4. ``AppRunner._make_server``, ``web.Server._loop`` and ``_kwargs``: aiohttp
   builds its ``Server`` inside ``Application._make_handler``, and that server
   always makes a plain ``RequestHandler``. ``HandlerRunner`` gives the built
   server the class of a subclass whose factory makes ours; the subclass adds
   no state, so adopting the built instance is safe.
5. ``ClientSession._retry_connection``: aiohttp resends an idempotent request
   once when a pooled connection turns out closed (RFC 9112 section 9.3.1
   allows it); a proxy must send what clients sent exactly once.
6. The raw ``100 Continue``: aiohttp would send it before any handler runs;
   ``send_continue`` writes the interim line through the request's stream
   writer once the credential passed, then sets the writer's ``output_size``
   back to 0, since aiohttp reads it to tell whether the response has started
   (its error path, the logged body length).
7. The text of llhttp's ``BadStatusLine``: only "Invalid HTTP version" tells a
   well-formed unknown version (HTTP/1.2, HTTP/3.0) from a malformed line.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

import aiohttp
from aiohttp import web
from aiohttp.http import HttpVersion, HttpVersion11
from aiohttp.http_exceptions import BadStatusLine, HttpProcessingError
from aiohttp.web_protocol import _ErrInfo

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _queued_error(exc: HttpProcessingError) -> _ErrInfo:
    return _ErrInfo(status=exc.code, exc=exc, message=exc.message)


class HookedRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, with hooks where a listener must see the wire.

    Subclasses override ``heads_parsed``, ``refusal_of`` and ``head_begun``, and
    may call ``refuse``, ``refuse_connection`` and ``event_loop``.
    """

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        # The hot path: per read, two len() calls and, for a new head, one identity check.
        messages = self._messages
        queued = len(messages)
        web.RequestHandler.data_received(self, data)
        if len(messages) != queued:
            self.heads_parsed()
            for index in range(queued, len(messages)):
                message, payload = messages[index]
                version = getattr(message, "version", HttpVersion11)  # _ErrInfo: none
                # llhttp hands out the HttpVersion11 singleton; the Python parser new tuples.
                if version is not HttpVersion11 and (exc := self.refusal_of(version)) is not None:
                    messages[index] = (_queued_error(exc), payload)  # it is never handled
        elif data and not messages and self._awaiting_head():
            self.head_begun(data)

    def heads_parsed(self) -> None:
        """One or more request heads were just parsed whole."""

    def refusal_of(self, version: HttpVersion) -> HttpProcessingError | None:
        """The refusal for a parsed head of ``version`` (not HTTP/1.1), or None to serve it."""
        return None

    def head_begun(self, data: bytes) -> None:
        """Bytes of a head arrived while no request is queued or running."""

    def _awaiting_head(self) -> bool:
        """No request is queued or running: these bytes begin the next head, not a body."""
        if self._request_count == 0:
            return True  # before start() first waits (uvloop may read first)
        # A done waiter: the head just arrived and its task has not run yet, and
        # uvloop may read the body more than once before it does.
        waiter = self._waiter
        return waiter is not None and not waiter.done()

    def refuse(self, exc: HttpProcessingError) -> None:
        """Queue ``exc`` as aiohttp queues a parse error: ``handle_error`` answers it and closes."""
        self._messages.append((_queued_error(exc), aiohttp.EMPTY_PAYLOAD))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def refuse_connection(self, transport: asyncio.BaseTransport) -> None:
        """Close a connection before aiohttp registers it."""
        self._manager = None  # aiohttp's connection_lost then does nothing
        transport.close()

    @property
    def event_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop


class HandlerServer(web.Server):
    """A ``web.Server`` whose connections get ``handler_class`` (see ``HandlerRunner``)."""

    handler_class: ClassVar[type[web.RequestHandler]] = web.RequestHandler

    def __call__(self) -> web.RequestHandler:
        return self.handler_class(self, loop=self._loop, **self._kwargs)


class HandlerRunner(web.AppRunner):
    """A ``web.AppRunner`` whose server is a ``server_class``."""

    server_class: ClassVar[type[HandlerServer]] = HandlerServer

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = self.server_class
        return server


def never_retry(client: aiohttp.ClientSession) -> aiohttp.ClientSession:
    """``client``, made to send each request once, even on a pooled connection found closed."""
    client._retry_connection = False
    return client


async def send_continue(request: web.BaseRequest) -> None:
    """Write ``100 Continue``, leaving the real response not started in aiohttp's eyes."""
    await request.writer.write(CONTINUE)
    request.writer.output_size = 0


def is_unknown_version(exc: BaseException | None) -> bool:
    """llhttp's refusal of a well-formed request line with a version it does not know."""
    return isinstance(exc, BadStatusLine) and "Invalid HTTP version" in exc.message
