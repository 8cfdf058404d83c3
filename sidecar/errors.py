"""The sidecar's error tree: each error knows its HTTP status and public text.

``KeystileError`` is the root and is never raised itself. Every bad credential
is one ``InvalidToken`` whatever the cause; the cause (``reason``) goes to the
log and the metrics, never to the client (RFC 6750 section 3.1).
"""

from __future__ import annotations

from typing import ClassVar


class KeystileError(Exception):
    """Root of the tree; never raised itself."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    public_message: ClassVar[str] = "internal error"

    def __init__(self, reason: str = "", *, field: str | None = None) -> None:
        super().__init__(reason or self.public_message)
        self.reason = reason or self.public_message
        self.field = field

    def body(self) -> dict[str, str]:
        body = {"error": self.code, "message": self.message()}
        if self.field is not None:
            body["field"] = self.field
        return body

    def message(self) -> str:
        return self.public_message


class InvalidRequest(KeystileError):
    """Malformed credential header, or two credential methods at once."""

    status = 400
    code = "invalid_request"
    public_message = "the request is malformed"

    def message(self) -> str:
        # The reason is written by us, never copied from the request.
        return self.reason


class MissingCredential(KeystileError):
    status = 401
    code = "unauthorized"
    public_message = "an API credential is required"


class InvalidToken(KeystileError):
    """Unknown, wrong secret, bad checksum, revoked, expired, user inactive..."""

    status = 401
    code = "invalid_token"
    public_message = "the credential is not valid"


class InactiveToken(InvalidToken):
    """A real token that may not be used now: revoked, expired, or its user inactive.

    The client sees the same 401; the proxy answers it at once, where a guess
    (unknown id, wrong secret, bad checksum) waits ``limits.refusal_delay_seconds``.
    """


class InsufficientScope(KeystileError):
    status = 403
    code = "insufficient_scope"
    public_message = "the credential does not allow this method on this API"


class NotFound(KeystileError):
    status = 404
    code = "not_found"
    public_message = "no API matches this path"


class StoreUnavailable(KeystileError):
    """Redis cannot be reached: fail closed."""

    status = 503
    code = "unavailable"
    public_message = "the credential store is unavailable; retry later"


class Overloaded(KeystileError):
    status = 503
    code = "overloaded"
    public_message = "too many credentials are being verified; retry later"


class TooManyAttempts(KeystileError):
    """Too many wrong secrets for one client_id from one address (verification.limits)."""

    status = 429
    code = "too_many_attempts"
    public_message = "too many failed attempts; retry later"

    def __init__(self, reason: str = "", *, retry_after: int = 60) -> None:
        super().__init__(reason)
        #: Whole seconds until the window that counted the attempts ends.
        self.retry_after = retry_after


class UpstreamUnavailable(KeystileError):
    status = 502
    code = "bad_gateway"
    public_message = "the upstream API could not be reached"


class UpstreamTimeout(KeystileError):
    status = 504
    code = "gateway_timeout"
    public_message = "the upstream API did not answer in time"


class BodyTooLarge(KeystileError):
    status = 413
    code = "payload_too_large"
    public_message = "the request body is too large"
