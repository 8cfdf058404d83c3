"""The signatures of a webhook call, two conventions side by side (docs/notify.md shows a
verifier for each):

- Stripe's, ``Keystile-Signature: t=<unix>,v1=<hex>``: ``v1`` is the hex
  HMAC-SHA256, under the webhook's secret, of ``"<t>.<body>"``; the timestamp
  is signed with the body so a receiver can refuse an old call replayed.
- GitHub's, ``X-Keystile-Signature-256: sha256=<hex>``: the hex HMAC-SHA256 of
  the raw body alone, for receivers that check exactly that.

A webhook without a secret is called with neither (``headers``). Pure module.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "Keystile-Signature"
HEADER_256 = "X-Keystile-Signature-256"


def headers(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """Both signature headers of ``body`` sent at ``timestamp``; none without a secret."""
    if not secret:
        return {}
    return {HEADER: signature(secret, body, timestamp), HEADER_256: body_signature(secret, body)}


def body_signature(secret: str, body: bytes) -> str:
    """The ``X-Keystile-Signature-256`` value: ``sha256=`` and the HMAC of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Keystile-Signature`` value of ``body`` sent at ``timestamp`` (unix seconds)."""
    signed = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, body: bytes, header: str, now: int, tolerance: int = 300) -> bool:
    """Whether ``header`` signs ``body`` under ``secret``, sent within ``tolerance`` s."""
    parts = dict(item.partition("=")[::2] for item in header.split(","))
    if not parts.get("t", "").isdigit() or abs(now - int(parts["t"])) > tolerance:
        return False
    expected = signature(secret, body, int(parts["t"])).partition(",v1=")[2]
    return hmac.compare_digest(expected, parts.get("v1", ""))
