"""The admin API's errors, on the sidecar's tree: each knows its status and public text.

The messages of these errors are written by Keystile (never copied from the
request), so they are shown to the caller as they are; none carries a secret.
401 and 403 come from ``sidecar.errors`` so the admin listener answers them as
the proxy does, challenge included.
"""

from __future__ import annotations

from sidecar.errors import InsufficientScope, KeystileError


class AdminError(KeystileError):
    """Root of the admin errors; never raised itself."""

    def message(self) -> str:
        return self.reason


class BadRequest(AdminError):
    """The request is not one the API accepts; ``field`` names the offending value."""

    status = 400
    code = "invalid_request"
    public_message = "the request is not valid"


class NotFound(AdminError):
    status = 404
    code = "not_found"
    public_message = "no such record"


class Conflicting(AdminError):
    status = 409
    code = "conflict"
    public_message = "the request conflicts with the stored state"


class NotJson(AdminError):
    status = 415
    code = "unsupported_media_type"
    public_message = "the body must be JSON (Content-Type: application/json)"


class TooLarge(AdminError):
    status = 413
    code = "payload_too_large"
    public_message = "the request body is too large"


class Forbidden(InsufficientScope):
    """An authenticated caller asked for more than its level on ``admin`` allows.

    A subclass of the proxy's 403 so it carries the same challenge.
    """

    public_message = "the credential does not allow this on the admin API"

    def message(self) -> str:
        return self.reason


class CsrfRefused(AdminError):
    """A change sent with a console session cookie but without its CSRF secret."""

    status = 403
    code = "csrf_failed"
    public_message = "the console's CSRF token is missing or wrong"
