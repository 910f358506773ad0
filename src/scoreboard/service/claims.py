"""What a verified token says, and why a token is refused: the checks on a token's claims that
follow its signature check (`service.tokens.TokenVerifier`), for built-in and external tokens.
"""

from __future__ import annotations

import math
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


def claims_of(payload: dict[str, Any], *, external: bool) -> Claims:
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
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None
