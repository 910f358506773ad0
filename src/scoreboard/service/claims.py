"""What a verified token says, and why a token is refused: the checks on a token's claims that
follow its signature check (`service.tokens.TokenVerifier`), for built-in and external tokens.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from scoreboard.domain.errors import Unauthenticated

EXPIRED_MESSAGE = "Authentication token expired."


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says. `external` is True for the identity provider's tokens."""

    subject: str
    issuer: str
    expires_at: float  # epoch seconds
    external: bool
    name: str | None = None
    preferred_username: str | None = None
    # Built-in: the token's `roles`; external: {"admin"} when the identity provider's admin
    # claim holds `scoreboard:admin` (`service.roles` decides what they grant).
    roles: frozenset[str] = frozenset()


_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, EXPIRED_MESSAGE),
    (jwt.ImmatureSignatureError, "Authentication token is not valid yet."),
    (jwt.InvalidIssuerError, "Authentication token issuer is not accepted."),
    (jwt.InvalidAudienceError, "Authentication token audience is not accepted."),
    (jwt.InvalidSignatureError, "Authentication token signature is invalid."),
    (jwt.InvalidAlgorithmError, "Authentication token algorithm is not allowed."),
)


def rejected(exc: jwt.PyJWTError) -> Unauthenticated:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return Unauthenticated(f"Authentication token lacks the '{exc.claim}' claim.")
    for kind, message in _REASONS:
        if isinstance(exc, kind):
            return Unauthenticated(message)
    return Unauthenticated("Invalid authentication token.")


NUMERIC_DATES = ("exp", "iat", "nbf")


def _check_dates(payload: dict[str, Any]) -> None:
    """RFC 7519 NumericDates are JSON numbers. PyJWT converts with `int(...)`, so it accepts
    `"exp": "9999999999"`: a token whose dates are strings (or booleans, or not finite) is
    refused as malformed, whoever signed it."""
    for name in NUMERIC_DATES:
        if name not in payload:
            continue
        value = payload[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Unauthenticated(f"Authentication token's '{name}' claim is not a number.")
        if not math.isfinite(value):
            raise Unauthenticated(f"Authentication token's '{name}' claim is not a number.")


EXTERNAL_ADMIN_VALUE = "scoreboard:admin"


def roles_of(payload: dict[str, Any], *, external: bool, admin_claim: str) -> frozenset[str]:
    """Built-in tokens list their roles (`"roles": ["admin"]`). An external token is an
    admin's when its `admin_claim` holds `scoreboard:admin`: a list of strings, or one string
    of space-separated values (OAuth's `scope` style); anything else grants nothing."""
    if not external:
        value = payload.get("roles")
        return (
            frozenset(v for v in value if isinstance(v, str))
            if isinstance(value, list)
            else frozenset()
        )
    value = payload.get(admin_claim)
    values = value.split() if isinstance(value, str) else value if isinstance(value, list) else []
    return frozenset({"admin"}) if EXTERNAL_ADMIN_VALUE in values else frozenset()


def claims_of(payload: dict[str, Any], *, external: bool, admin_claim: str = "roles") -> Claims:
    _check_dates(payload)
    subject = payload["sub"]
    if not isinstance(subject, str) or not subject.strip():
        raise Unauthenticated("Authentication token has no subject.")
    return Claims(
        subject=subject,
        issuer=str(payload["iss"]),
        expires_at=float(payload["exp"]),
        external=external,
        name=_text(payload.get("name")),
        preferred_username=_text(payload.get("preferred_username")),
        roles=roles_of(payload, external=external, admin_claim=admin_claim),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


class VerifiedTokens:
    """Tokens whose signature and claims were verified, so a token presented again is not
    decoded and checked again: a bounded LRU from the SHA-256 digest of the token's exact text
    to its `Claims`, each kept until its `deadline`.

    The key is the digest of the whole token (header, payload and signature), so a token that
    differs in any byte (a tampered payload, a forged signature) never finds another's entry
    and is verified in full. The deadline is the moment PyJWT's own check would refuse the
    token (`int(exp) <= now - leeway`), or sooner (an external token is served no longer than
    its signing key is trusted); a token past it is verified again, and so refused with the
    usual message. Only successes are kept: a refused token costs a full verification every
    time, exactly as before. 32 bytes of key and one shared `Claims` per entry.
    """

    def __init__(self, max_entries: int = 65_536, clock: Callable[[], float] = time.time):
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[float, Claims]] = OrderedDict()

    @staticmethod
    def key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, key: bytes) -> Claims | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock() >= entry[0]:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: bytes, claims: Claims, deadline: float) -> None:
        if self._max <= 0 or self._clock() >= deadline:
            return
        self._entries[key] = (deadline, claims)
        self._entries.move_to_end(key)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def expiry_deadline(claims: Claims, leeway: float) -> float:
    """When PyJWT starts refusing a token with these claims: it compares `int(exp)`."""
    return int(claims.expires_at) + leeway
