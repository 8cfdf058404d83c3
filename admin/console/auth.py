"""Admin callers signed in through the web console: a session cookie and a CSRF header.

    request -> session cookie -> session (Redis) -> the token's record, fresh
            -> standing (revoked, expired, user inactive, regenerated since) -> Caller

The token behind a session is read from the store on every request, not from
the verification cache, so a revocation made by any worker or replica ends
the session on its next request; a session whose token fails is deleted at
once. Unsafe methods also need the session's CSRF secret in ``X-CSRF-Token``
(compared in constant time): the cookie is ``SameSite=Strict`` as well, but a
header that another origin cannot set is the defence that does not depend on
the browser.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from admin.authz import Caller
from admin.console.sessions import Session, SessionStore
from admin.errors import CsrfRefused
from sidecar import clock
from sidecar.errors import InvalidToken, KeystileError, MissingCredential
from sidecar.store.protocol import Credential, CredentialStore
from sidecar.verification.verifier import Verified, check_standing, verified_identity

COOKIE = "keystile_console"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def caller_of(verified: Verified) -> Caller:
    return Caller(
        client_id=verified.client_id,
        username=verified.username,
        access=verified.access,
        role_access=verified.role_access,
        expires_at=clock.from_rfc3339(verified.expires_at),
    )


class ConsoleAuth:
    def __init__(self, sessions: SessionStore, store: CredentialStore) -> None:
        self.sessions = sessions
        self.store = store

    async def session(self, request: web.Request) -> tuple[str, Session, Credential]:
        """The request's live session and its token; a failed one is ended, then refused."""
        session_id = request.cookies.get(COOKIE)
        if not session_id:
            raise MissingCredential("no credential and no console session")
        session = await self.sessions.find(session_id)
        if session is None:
            raise InvalidToken("console session unknown or idle too long")
        credential = await self.store.load_credential(session.client_id)
        try:
            _check(session, credential)
        except KeystileError:
            await self.sessions.end(session_id)
            raise
        assert credential is not None  # _check refuses a missing one
        return session_id, session, credential

    async def signed_in(self, request: web.Request) -> tuple[str, Session, Caller]:
        """The session's id, record and caller; no CSRF check (see ``verified``)."""
        session_id, session, credential = await self.session(request)
        return session_id, session, caller_of(verified_identity(credential, session.client_id))

    async def verified(self, request: web.Request) -> Verified:
        """The identity behind the request's console session, CSRF checked on unsafe methods."""
        _, session, credential = await self.session(request)
        if request.method not in SAFE_METHODS:
            check_csrf(request, session)
        return verified_identity(credential, session.client_id)


def _check(session: Session, credential: Credential | None) -> None:
    if credential is None:
        raise InvalidToken("console session's token deleted")
    check_standing(credential, clock.now())
    # A regenerated token's old secret must not keep a session it opened alive.
    if (credential.token.regenerated_at or "") != session.regenerated_at:
        raise InvalidToken("console session's token regenerated")


def check_csrf(request: web.Request, session: Session) -> None:
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise CsrfRefused(f"a change from the console needs the {CSRF_HEADER} header")
