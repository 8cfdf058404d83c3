"""Which headers cross the proxy, in each direction (RFC 9110 section 7.6).

Hop-by-hop fields and every field named in ``Connection`` are dropped
(RFC 9110 section 7.6.1). Client copies of the identity headers are removed
under any spelling a server might fold onto them (``X_Auth_User``,
``x-AUTH-user``), then set from the verified identity. The credential is
dropped unless the API asks for it. Method-override headers are removed so an
upstream can never be talked into a method the policy did not see. Pure
module: lists of (name, value) pairs in, lists out.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from sidecar.config import HeadersConfig

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
METHOD_OVERRIDES = frozenset({"x-http-method-override", "x-http-method", "x-method-override"})
FORWARDED = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"})
VIA = "1.1 keystile"

Headers = list[tuple[str, str]]


# Not frozen: one is made per proxied request, and a frozen dataclass's __init__
# (object.__setattr__ per field) costs about 0.4 us more; nothing assigns to it.
@dataclass(slots=True)
class Identity:
    username: str
    client_id: str
    role: str | None
    level: str


def fold(name: str) -> str:
    """The form under which servers may treat two spellings as one field."""
    return name.lower().replace("_", "-")


def _end_to_end(
    headers: Headers, extra_drop: frozenset[str]
) -> tuple[Headers, list[str], list[str]]:
    """The end-to-end fields, and the prior ``Via`` and ``X-Forwarded-For`` values.

    One pass over the fields (this runs twice per proxied request): a name is
    folded only when it has an underscore, since only then can it differ from
    its lower-case form.
    """
    drop = _with_hop_by_hop(extra_drop)
    kept: Headers = []
    via: list[str] = []
    forwarded_for: list[str] = []
    listed: set[str] = set()
    for name, value in headers:
        low = name.lower()
        if low in drop or ("_" in low and low.replace("_", "-") in extra_drop):
            if low == "via":
                via.append(value)
            elif low == "x-forwarded-for":
                forwarded_for.append(value)
            elif low == "connection":
                listed.update(token.strip().lower() for token in value.split(",") if token.strip())
            continue
        kept.append((name, value))
    if listed:
        kept = [(name, value) for name, value in kept if name.lower() not in listed]
    return kept, via, forwarded_for


@functools.lru_cache(maxsize=64)
def _with_hop_by_hop(extra_drop: frozenset[str]) -> frozenset[str]:
    return HOP_BY_HOP | extra_drop


def upstream_request(
    headers: Headers,
    names: HeadersConfig,
    identity: Identity,
    *,
    forward_credential: bool,
    peer: str,
    scheme: str,
    host: str,
    request_id: str,
    trusted_hops: int = 0,
) -> Headers:
    """The headers sent upstream for a request the policy allowed.

    ``X-Forwarded-Proto``/``-Host`` are ours unless ``trusted_hops`` says a proxy
    in front of us set them; then the values it sent are kept.
    """
    if trusted_hops > 0:
        scheme = _first(headers, "x-forwarded-proto") or scheme
        host = _first(headers, "x-forwarded-host") or host
    out, prior_via, prior_for = _end_to_end(headers, _request_drop(names, forward_credential))
    out.append(("X-Forwarded-For", ", ".join([*prior_for, peer])))
    out.append(("X-Forwarded-Proto", scheme))
    out.append(("X-Forwarded-Host", host))
    out.append(("Via", ", ".join([*prior_via, VIA])))
    out.append((names.request_id, request_id))
    out.extend(identity_headers(names, identity))
    return out


@functools.lru_cache(maxsize=64)
def _request_drop(names: HeadersConfig, forward_credential: bool) -> frozenset[str]:
    """Fields never sent upstream as the client sent them (depends on the config only)."""
    drop = {fold(n) for n in (names.user, names.client_id, names.role, names.access)}
    drop |= METHOD_OVERRIDES | FORWARDED
    # The upstream gets its own Host (as nginx does); the client's goes in X-Forwarded-Host.
    # Expect is answered here (100 Continue once the credential passed), not upstream.
    drop |= {fold(names.request_id), "via", "host", "expect"}
    if not forward_credential:
        drop |= {"authorization", fold(names.credential_client_id)}
        drop |= {fold(names.credential_client_secret)}
    return frozenset(drop)


@functools.lru_cache(maxsize=64)
def _response_drop(names: HeadersConfig) -> frozenset[str]:
    return frozenset({fold(names.request_id), "via"})


def _first(headers: Headers, name: str) -> str | None:
    for field_name, value in headers:
        if field_name.lower() == name:
            return value.split(",")[0].strip() or None
    return None


def client_address(peer: str, forwarded_for: list[str], trusted_hops: int) -> str:
    """The client's address: the peer, or with ``trusted_hops`` proxies in front of
    us, the entry of ``X-Forwarded-For`` that the outermost trusted proxy added."""
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    if trusted_hops <= 0 or not hops:
        return peer
    return hops[max(len(hops) - trusted_hops, 0)]


def downstream_response(headers: Headers, names: HeadersConfig, request_id: str) -> Headers:
    """The upstream's response headers as returned to the client (repeats kept).

    ``Via`` is appended to, as RFC 9110 section 7.6.3 asks of a proxy in both directions.
    """
    out, prior_via, _ = _end_to_end(headers, _response_drop(names))
    out.append(("Via", ", ".join([*prior_via, VIA])))
    out.append((names.request_id, request_id))
    return out


def identity_headers(names: HeadersConfig, identity: Identity) -> Headers:
    """The identity headers set on a forwarded request; no role header without a role."""
    out = [(names.user, identity.username), (names.client_id, identity.client_id)]
    if identity.role is not None:
        out.append((names.role, identity.role))
    out.append((names.access, identity.level))
    return out


def check_answer(names: HeadersConfig, identity: Identity) -> Headers:
    """The identity headers of a forward-auth answer: all four, always.

    A front copies "the headers the answer carries" onto the forwarded request
    (Envoy's ``allowed_upstream_headers`` sets only those); a header left out
    would leave the client's own copy in place. So a token without a role
    answers the role header with an empty value, which overwrites any copy.
    """
    role = identity.role if identity.role is not None else ""
    return [
        (names.user, identity.username),
        (names.client_id, identity.client_id),
        (names.role, role),
        (names.access, identity.level),
    ]


_REQUEST_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._:")
MAX_REQUEST_ID_LENGTH = 128


def request_id(sent: str | None, new: str) -> str:
    """The client's request id when it is a plain token, else ``new``.

    A request id lands in logs and in the upstream's headers: anything longer
    than 128 characters or outside ``[A-Za-z0-9._:-]`` is replaced, not copied.
    """
    if sent and len(sent) <= MAX_REQUEST_ID_LENGTH and set(sent) <= _REQUEST_ID_CHARS:
        return sent
    return new
