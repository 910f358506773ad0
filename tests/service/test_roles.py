"""Roles carried into a request (service/roles.py): the built-in token's `roles` claim AND the
account's roles; an external token is an admin's when the claim named by
`SCOREBOARD_EXTERNAL_ADMIN_CLAIM` holds `scoreboard:admin`. Real JWKS server (test_tokens)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest

from scoreboard.config import Settings
from scoreboard.realtime.limiter import LimitsRateLimiter
from scoreboard.service.claims import Claims
from scoreboard.service.identity import IdentityService
from scoreboard.service.passwords import PasswordHasher
from scoreboard.service.principal import Principal
from scoreboard.service.roles import RoleService, granted_roles
from scoreboard.service.tokens import ExternalProvider, TokenIssuer, TokenVerifier
from scoreboard.store.base import Store, UserRecord

from .test_tokens import (  # noqa: F401  (provider is a fixture)
    AUDIENCE,
    EXT_ISSUER,
    ISSUER,
    SECRET,
    Provider,
    builtin_claims,
    external_claims,
    provider,
)


def external_verifier(provider: Provider, **kwargs: Any) -> TokenVerifier:  # noqa: F811
    ext = ExternalProvider(provider.url, EXT_ISSUER, AUDIENCE, frozenset({"RS256"}))
    return TokenVerifier(SECRET, issuer=ISSUER, provider=ext, **kwargs)


def rs256(provider: Provider, **changes: Any) -> str:  # noqa: F811
    claims = external_claims(**changes)
    return jwt.encode(claims, provider.rsa_key, "RS256", headers={"kid": "rsa-1"})


@pytest.mark.parametrize(
    ("claim", "value", "admin"),
    [
        ("roles", ["scoreboard:admin"], True),
        ("roles", ["reader", "scoreboard:admin"], True),
        ("roles", "openid scoreboard:admin", True),  # space-separated, like `scope`
        ("roles", ["scoreboard:reader"], False),
        ("roles", "scoreboard:administrator", False),
        ("roles", {"scoreboard:admin": True}, False),
        ("groups", ["scoreboard:admin"], False),  # another claim than the configured one
        (None, None, False),
    ],
)
async def test_the_external_admin_claim(
    provider: Provider,  # noqa: F811
    claim: str | None,
    value: Any,
    admin: bool,
) -> None:
    changes = {} if claim is None else {claim: value}
    claims = await external_verifier(provider).verify(rs256(provider, **changes))
    assert claims.roles == (frozenset({"admin"}) if admin else frozenset())


async def test_the_claim_is_configurable(provider: Provider, tmp_path: Path) -> None:  # noqa: F811
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path,
        jwt_secret=SECRET,
        jwt_issuer=ISSUER,
        jwks_url=provider.url,
        external_issuer=EXT_ISSUER,
        external_audience=AUDIENCE,
        external_admin_claim="groups",
    )
    verifier = TokenVerifier.from_settings(settings, SECRET)
    by_groups = await verifier.verify(rs256(provider, groups=["scoreboard:admin"]))
    assert by_groups.roles == {"admin"}
    by_roles = await verifier.verify(rs256(provider, sub="other", roles=["scoreboard:admin"]))
    assert by_roles.roles == frozenset()


async def test_builtin_tokens_list_their_roles() -> None:
    verifier = TokenVerifier(SECRET, issuer=ISSUER)
    issuer = TokenIssuer(SECRET, issuer=ISSUER, ttl_seconds=600)
    admin_token, _ = issuer.issue("u-1", frozenset({"admin"}))
    assert (await verifier.verify(admin_token)).roles == {"admin"}
    plain, _ = issuer.issue("u-2")
    assert "roles" not in jwt.decode(plain, options={"verify_signature": False})
    assert (await verifier.verify(plain)).roles == frozenset()
    odd = jwt.encode(builtin_claims(roles="admin"), SECRET, algorithm="HS256")
    assert (await verifier.verify(odd)).roles == frozenset()  # a string is not a list


def user(roles: frozenset[str]) -> UserRecord:
    return UserRecord("u-1", "alice", "Alice", None, datetime.now(UTC), roles=roles)


def claims(roles: frozenset[str], *, external: bool) -> Claims:
    return Claims("u-1", ISSUER, 0.0, external, roles=roles)


ADMIN = frozenset({"admin"})
NONE: frozenset[str] = frozenset()


def test_granted_roles() -> None:
    # Built-in: what the token names AND the account still holds.
    assert granted_roles(claims(ADMIN, external=False), user(ADMIN)) == ADMIN
    assert granted_roles(claims(ADMIN, external=False), user(NONE)) == NONE  # demoted
    assert granted_roles(claims(NONE, external=False), user(ADMIN)) == NONE  # token before
    # External: the provider's grant, or the account's.
    assert granted_roles(claims(ADMIN, external=True), user(NONE)) == ADMIN
    assert granted_roles(claims(NONE, external=True), user(ADMIN)) == ADMIN
    assert granted_roles(claims(NONE, external=True), user(NONE)) == NONE


def test_principals_name_their_actor() -> None:
    person = Principal("u-1", "Alice", 0.0, False, ADMIN)
    assert person.is_admin and person.actor == "u-1" and person.kind == "user"
    key = Principal("", "ops", math.inf, False, frozenset({"scorer"}), "apikey", "ops")
    assert not key.is_admin and key.actor == "apikey:ops"


async def test_an_external_admin_is_an_admin_principal(
    store: Store,
    provider: Provider,  # noqa: F811
) -> None:
    limiter = LimitsRateLimiter.in_memory()
    issuer = TokenIssuer(SECRET, issuer=ISSUER, ttl_seconds=600)
    identity = IdentityService(
        store,
        PasswordHasher(1),
        issuer,
        external_verifier(provider),
        limiter,
        "100/minute",
        "100/minute",
        account_cache_seconds=0,
    )
    try:
        admin = await identity.authenticate(rs256(provider, roles=["scoreboard:admin"]))
        assert admin.external and admin.is_admin
        plain = await identity.authenticate(
            rs256(provider, sub="user-43", preferred_username="bobby")
        )
        assert not plain.is_admin
        # Promoted here, an external account is an admin with any token of theirs.
        await RoleService(store).promote("bobby", actor="test")
        again = await identity.authenticate(rs256(provider, sub="user-43", jti="x"))
        assert again.is_admin
    finally:
        await limiter.close()
