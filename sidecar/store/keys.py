"""Every Redis key name Keystile uses, and nothing else.

All keys share the hash tag ``{ks}`` so that multi-key transactions and Lua
scripts stay legal on Redis Cluster (every key lands in one slot).
"""

from __future__ import annotations

TAG = "{ks}"

#: Pub/sub channel carrying invalidation events (token, user or role changed).
EVENTS = f"{TAG}:events"
#: Counter bumped by every change, so a subscriber can detect missed events.
GENERATION = f"{TAG}:generation"
#: Every client_id ever issued: a set that deletion never shrinks.
ISSUED_IDS = f"{TAG}:issued"
#: Sorted set of live client_ids, scored by creation time (ms).
TOKENS = f"{TAG}:tokens"
#: Sorted set of lowercased usernames, scored by creation time (ms).
USERS = f"{TAG}:users"
#: Set of role names.
ROLES = f"{TAG}:roles"
#: Global change log, a stream (newest last; read in reverse).
AUDIT = f"{TAG}:audit"
#: A random value written once (SET NX) at first use: a different or missing one
#: means the store was flushed or restored (sidecar/store/epoch.py).
EPOCH = f"{TAG}:epoch"
#: Notices waiting to be delivered to the ``[[notify]]`` webhooks (a stream,
#: read through a consumer group so each goes out once across replicas);
#: written by sidecar/store/notices.py in the transaction that causes them.
NOTICES = f"{TAG}:notices"


def token(client_id: str) -> str:
    return f"{TAG}:token:{client_id}"


def token_history(client_id: str) -> str:
    return f"{TAG}:history:{client_id}"


def user(username: str) -> str:
    return f"{TAG}:user:{username.lower()}"


def user_tokens(username: str) -> str:
    return f"{TAG}:user-tokens:{username.lower()}"


def role(name: str) -> str:
    return f"{TAG}:role:{name}"


def role_tokens(name: str) -> str:
    return f"{TAG}:role-tokens:{name}"


def wrong_secrets(client_id: str, address: str) -> str:
    """The wrong secrets of one client_id from one address in the current window (a set).

    Not the ``wrong-secrets`` counter of earlier versions: a new name, so a window
    still open across an upgrade is not read as the wrong type.
    """
    return f"{TAG}:wrong-secret-misses:{client_id}:{address}"


def console_session(digest: str) -> str:
    """A web console session, by the SHA-256 of its id (the id itself is never stored)."""
    return f"{TAG}:console-session:{digest}"


# -- acknowledged revocation (docs/revocation.md#acknowledged-revocation) -------

#: The live replicas (each process with an invalidation listener): a hash, one
#: field per replica id, its value JSON (host, version, started, the generation
#: applied, the lease, ``seen_at`` in the server's ms). Ephemeral: not exported.
REPLICAS = f"{TAG}:replicas"
#: Pub/sub channel on which a replica announces ``"<id> <generation>"`` once applied.
ACKS = f"{TAG}:acks"


# -- least privilege from observed use (sidecar/store/uses.py) -----------------


def token_uses(client_id: str) -> str:
    """A token's uses: a hash of ``<yyyy-mm-dd>|<api>|safe|unsafe`` -> count.

    Operational data, not exported: it expires with its last use plus
    ``tokens.usage_days``, and goes with its token.
    """
    return f"{TAG}:uses:{client_id}"


# -- leak response (docs/leaks.md) ---------------------------------------------


def leak_reports(address: str) -> str:
    """Leak reports from one client address in the current minute (a counter that expires).

    Ephemeral, like the wrong-secret windows: not exported, not checked.
    """
    return f"{TAG}:leak-reports:{address}"


# -- notices (sidecar/notify/): none of these is exported ------------------------

#: Held (SET NX PX) by the replica running the expiry scan, so one runs at a time.
NOTIFY_SCAN_LEASE = f"{TAG}:notify-scan-lease"
#: The consumer group on ``NOTICES`` every replica's notifier reads through.
NOTIFY_GROUP = "notify"


def expiry_notice(client_id: str, days: int, expires_s: int) -> str:
    """Set once the ``days``-before notice of ``client_id``'s expiry at ``expires_s`` is queued.

    Keyed by the expiry, so a regeneration that moves it allows fresh notices.
    """
    return f"{TAG}:expiry-notice:{client_id}:{days}:{expires_s}"


# -- rotation evidence (sidecar/store/graceuses.py) ----------------------------


def grace_uses(client_id: str) -> str:
    """The old secret's uses during a regeneration's grace period, per client (a hash).

    Written by sidecar/store/graceuses.py; expires when the grace period ends.
    """
    return f"{TAG}:grace-uses:{client_id}"
