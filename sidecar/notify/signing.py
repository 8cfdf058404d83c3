"""The signature of a webhook call: Stripe's scheme, ``Keystile-Signature: t=<unix>,v1=<hex>``.

``v1`` is the hex HMAC-SHA256, under the webhook's secret, of ``"<t>.<body>"``;
the timestamp is signed with the body so a receiver can refuse an old call
replayed (docs/notify.md shows a five-line verifier). Pure module.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "Keystile-Signature"


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
