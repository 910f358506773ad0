"""Access tokens: issue our own (HS256) and verify ours or an external provider's (RS256/ES256).

The verifier decides which key and which single algorithm to use from configuration, never from
the token: the token's `alg` header only selects among allow-listed paths, and each path passes
exactly one algorithm to `jwt.decode`. HS256 is accepted only with our secret and our issuer;
asymmetric algorithms only with a key from the configured JWKS, for the configured issuer and
audience. That closes `alg: none`, algorithm confusion (an HS256 token "signed" with the
provider's public key) and tokens minted by one issuer but presented as another's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient

from scoreboard.config import Settings
from scoreboard.domain.errors import ServiceUnavailable, Unauthenticated
from scoreboard.service.claims import Claims as Claims
from scoreboard.service.claims import VerifiedTokens, claims_of, expiry_deadline, rejected
from scoreboard.service.principal import API_KEY_PREFIX

BUILTIN_ALGORITHM = "HS256"
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
SECRET_FILE = "jwt-secret"
MIN_SECRET_LENGTH = 32  # RFC 7518 §3.2: an HS256 key must be at least 256 bits
MAX_TOKEN_LENGTH = 8192  # parse nothing larger: a cheap guard against oversized headers
BUILTIN_REQUIRED = ["iss", "sub", "iat", "exp", "jti"]
EXTERNAL_REQUIRED = ["iss", "sub", "iat", "exp", "aud"]


def load_or_create_secret(settings: Settings) -> str:
    """The HS256 secret: configured, or generated once and kept in `<data_dir>/jwt-secret`.

    Keeping the generated secret on disk means a restart does not log everyone out. The file is
    written under a temporary name and hard-linked into place, so two processes starting at once
    agree on one secret and neither reads a half-written file.
    """
    if settings.jwt_secret:
        return _checked(settings.jwt_secret, "SCOREBOARD_JWT_SECRET")
    directory = Path(settings.data_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / SECRET_FILE
    if not path.exists():
        _create_secret_file(path)
    return _checked(path.read_text(encoding="utf-8").strip(), str(path))


def _create_secret_file(path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        # FileExistsError: another process won the race; its secret is the one to use.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _checked(secret: str, source: str) -> str:
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"JWT secret from {source} needs at least {MIN_SECRET_LENGTH} characters")
    return secret


class TokenIssuer:
    """Mints the service's own access tokens (HS256)."""

    def __init__(self, secret: str, *, issuer: str, ttl_seconds: int) -> None:
        self._secret = secret
        self._issuer = issuer
        self._ttl = ttl_seconds

    @classmethod
    def from_settings(cls, settings: Settings, secret: str) -> TokenIssuer:
        return cls(secret, issuer=settings.jwt_issuer, ttl_seconds=settings.token_ttl_seconds)

    def issue(self, user_id: str, roles: Iterable[str] = ()) -> tuple[str, int]:
        """A signed token for `user_id` and its lifetime in seconds (the `expires_in` field).
        `roles` (the account's, e.g. "admin") are listed in a `roles` claim when there are
        any; a token grants them only while the account holds them (`service.roles`)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": user_id,
            "iat": now,
            "exp": now + self._ttl,
            "jti": uuid.uuid4().hex,  # lets a log line or a future deny-list name one token
        }
        if roles:
            claims["roles"] = sorted(roles)
        return jwt.encode(claims, self._secret, algorithm=BUILTIN_ALGORITHM), self._ttl


@dataclass(frozen=True, slots=True)
class ExternalProvider:
    """Where an external identity provider publishes its keys and what its tokens must say."""

    jwks_url: str
    issuer: str
    audience: str
    algorithms: frozenset[str]

    def __post_init__(self) -> None:
        # Without both checks a token from any tenant of the provider would be accepted.
        if not self.issuer or not self.audience:
            raise ValueError("jwks_url needs external_issuer and external_audience")
        symmetric = set(self.algorithms) - ASYMMETRIC_ALGORITHMS
        if symmetric or not self.algorithms:
            raise ValueError(f"external_algorithms must be asymmetric, not {sorted(symmetric)}")


class TokenVerifier:
    """Verifies access tokens; every failure is `Unauthenticated` with a human message.

    External keys are fetched with `PyJWKClient`, whose HTTP fetch blocks, so it runs in a
    worker thread; keys it returns are kept here for `jwks_lifespan` seconds so the common case
    costs no thread hop, and a key the provider withdraws stops working within that time.
    An unreachable JWKS endpoint is `ServiceUnavailable`: the token may be fine, we cannot tell.

    A token verified once is served from `VerifiedTokens` (at most `cache_size` of them) until
    PyJWT would refuse it as expired, so a client's repeated requests cost a hash and a lookup
    instead of a decode and an HMAC or RSA check; an external token no longer than its key is
    trusted. `clock` (epoch seconds) is the cache's; tests move it.
    """

    def __init__(
        self,
        secret: str,
        *,
        issuer: str,
        provider: ExternalProvider | None = None,
        jwks_lifespan: float = 300.0,
        jwks_timeout: float = 5.0,
        external_leeway: float = 30.0,
        cache_size: int = 65_536,
        clock: Callable[[], float] = time.time,
        admin_claim: str = "roles",
    ) -> None:
        if provider is not None and provider.issuer == issuer:
            # One issuer name with two kinds of key would let either vouch for the other.
            raise ValueError("external_issuer must differ from jwt_issuer")
        self._secret = secret
        self._issuer = issuer
        self._provider = provider
        self._lifespan = jwks_lifespan
        # Providers' clocks drift; our own tokens are checked against our own clock exactly.
        self._leeway = external_leeway
        self._client = (
            PyJWKClient(provider.jwks_url, lifespan=jwks_lifespan, timeout=jwks_timeout)
            if provider is not None
            else None
        )
        self._keys: dict[str, tuple[PyJWK, float]] = {}
        self._clock = clock
        self._verified = VerifiedTokens(cache_size, clock)
        self._admin_claim = admin_claim  # the external token's claim naming its roles

    @classmethod
    def from_settings(cls, settings: Settings, secret: str) -> TokenVerifier:
        provider = None
        if settings.jwks_url:
            provider = ExternalProvider(
                jwks_url=settings.jwks_url,
                issuer=settings.external_issuer,
                audience=settings.external_audience,
                algorithms=frozenset(settings.external_algorithms),
            )
        return cls(
            secret,
            issuer=settings.jwt_issuer,
            provider=provider,
            admin_claim=settings.external_admin_claim,
        )

    async def verify(self, token: str) -> Claims:
        """The token's claims, or `Unauthenticated` saying why it is refused."""
        _check_size(token)
        digest = self._verified.key(token)
        cached = self._verified.get(digest)
        if cached is not None:
            return cached
        header = _unverified_header(token)
        alg = header.get("alg")
        if alg == BUILTIN_ALGORITHM:
            claims = self._verify_builtin(token)
            self._verified.put(digest, claims, expiry_deadline(claims, 0.0))
            return claims
        provider = self._provider
        if provider is not None and isinstance(alg, str) and alg in provider.algorithms:
            key, trusted_until = await self._signing_key(header.get("kid"))
            claims = self._verify_external(token, alg, key, provider)
            key_deadline = self._clock() + (trusted_until - time.monotonic())
            deadline = min(expiry_deadline(claims, self._leeway), key_deadline)
            self._verified.put(digest, claims, deadline)
            return claims
        raise Unauthenticated("Authentication token algorithm is not allowed.")

    def _verify_builtin(self, token: str) -> Claims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[BUILTIN_ALGORITHM],
                issuer=self._issuer,
                options={"require": BUILTIN_REQUIRED},
            )
        except jwt.PyJWTError as exc:
            raise rejected(exc) from exc
        return claims_of(payload, external=False)

    def _verify_external(
        self, token: str, alg: str, key: PyJWK, provider: ExternalProvider
    ) -> Claims:
        # The key fixes the algorithm: an RSA key verifies RS256 only, an EC P-256 key ES256.
        if key.algorithm_name != alg or key.algorithm_name not in provider.algorithms:
            raise Unauthenticated("Authentication token algorithm does not match its key.")
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[key.algorithm_name],
                issuer=provider.issuer,
                audience=provider.audience,
                options={"require": EXTERNAL_REQUIRED},
                leeway=self._leeway,
            )
        except jwt.PyJWTError as exc:
            raise rejected(exc) from exc
        return claims_of(payload, external=True, admin_claim=self._admin_claim)

    async def _signing_key(self, kid: Any) -> tuple[PyJWK, float]:
        """The key and until when (monotonic) it is trusted without asking the JWKS again."""
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("Authentication token names no signing key.")
        cached = self._keys.get(kid)
        if cached is not None and cached[1] > time.monotonic():
            return cached
        assert self._client is not None  # only called when a provider is configured
        try:
            key = await asyncio.to_thread(self._client.get_signing_key, kid)
        except jwt.PyJWKClientConnectionError as exc:
            raise ServiceUnavailable(
                "The identity provider's keys cannot be fetched.", retry_after=5
            ) from exc
        except jwt.PyJWKClientError as exc:
            raise Unauthenticated("Authentication token signing key is not known.") from exc
        except jwt.PyJWTError as exc:
            raise ServiceUnavailable("The identity provider's key set is unusable.") from exc
        if len(self._keys) >= 64:  # keys come only from the JWKS, but stay bounded regardless
            self._keys.clear()
        entry = self._keys[kid] = (key, time.monotonic() + self._lifespan)
        return entry


def _check_size(token: str) -> None:
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise Unauthenticated("Malformed authentication token.")


def _unverified_header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        if token.startswith(API_KEY_PREFIX):
            raise Unauthenticated(
                "An API key does not sign in as a user: it is accepted by the server-write"
                " and admin routes only."
            ) from exc
        raise Unauthenticated("Malformed authentication token.") from exc
