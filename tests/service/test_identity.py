"""IdentityService: registration, login, rate limits, bearer tokens and external provisioning.

Every test runs twice: on the real SqlStore over SQLite and over PostgreSQL. Rate limits use
the real `limits`-based limiter, external tokens the real JWKS server of `test_tokens`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from scoreboard.domain.errors import (
    InvalidCredentials,
    NotFound,
    RateLimited,
    Unauthenticated,
    UsernameTaken,
    ValidationFailed,
)
from scoreboard.realtime.limiter import LimitsRateLimiter
from scoreboard.service.identity import IdentityService, Principal
from scoreboard.service.passwords import PasswordHasher
from scoreboard.service.tokens import ExternalProvider, TokenIssuer, TokenVerifier
from scoreboard.store.base import Store

from .test_tokens import (  # noqa: F401  (provider is a fixture)
    AUDIENCE,
    EXT_ISSUER,
    ISSUER,
    SECRET,
    Provider,
    external_claims,
    provider,
)

PASSWORD = "correct horse battery"


@pytest.fixture
async def limiter() -> AsyncIterator[LimitsRateLimiter]:
    limits = LimitsRateLimiter.in_memory()
    yield limits
    await limits.close()


@pytest.fixture
def hasher() -> PasswordHasher:
    return PasswordHasher(4)


@pytest.fixture
def verifier(provider: Provider) -> TokenVerifier:  # noqa: F811
    ext = ExternalProvider(provider.url, EXT_ISSUER, AUDIENCE, frozenset({"RS256", "ES256"}))
    return TokenVerifier(SECRET, issuer=ISSUER, provider=ext)


def make_service(
    store: Store,
    hasher: PasswordHasher,
    verifier: TokenVerifier,
    limiter: LimitsRateLimiter,
    *,
    login_limit: str = "100/minute",
    register_limit: str = "100/minute",
    **kwargs: Any,
) -> IdentityService:
    issuer = TokenIssuer(SECRET, issuer=ISSUER, ttl_seconds=600)
    return IdentityService(
        store, hasher, issuer, verifier, limiter, login_limit, register_limit, **kwargs
    )


@pytest.fixture
def service(
    store: Store, hasher: PasswordHasher, verifier: TokenVerifier, limiter: LimitsRateLimiter
) -> IdentityService:
    return make_service(store, hasher, verifier, limiter)


def rs256(provider: Provider, **changes: Any) -> str:  # noqa: F811
    return jwt.encode(
        external_claims(**changes), provider.rsa_key, "RS256", headers={"kid": "rsa-1"}
    )


# -- register -------------------------------------------------------------------------------------


async def test_register(service: IdentityService, store: Store) -> None:
    user = await service.register("alice", PASSWORD, client="10.0.0.1")
    assert (user.username, user.display_name, user.active) == ("alice", "alice", True)
    assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert await store.get_user(user.user_id) == user


async def test_register_with_display_name(service: IdentityService) -> None:
    user = await service.register("bob", PASSWORD, "  Bob the Builder ", client="10.0.0.1")
    assert user.display_name == "Bob the Builder"


@pytest.mark.parametrize(
    ("username", "password", "display_name"),
    [
        ("abc", "p" * 8, "x"),
        ("a" * 32, "p" * 128, "y" * 64),
        ("A.b_c-1", "pässwörd", "Zoë ☃"),
    ],
)
async def test_register_boundaries(
    service: IdentityService, username: str, password: str, display_name: str
) -> None:
    user = await service.register(username, password, display_name, client="10.0.0.1")
    assert user.username == username


@pytest.mark.parametrize(
    ("username", "password", "display_name", "field"),
    [
        ("ab", PASSWORD, None, "username"),
        ("a" * 33, PASSWORD, None, "username"),
        ("bad name", PASSWORD, None, "username"),
        ("ümlaut", PASSWORD, None, "username"),
        ("semi;colon", PASSWORD, None, "username"),
        ("", PASSWORD, None, "username"),
        ("carol", "short", None, "password"),
        ("carol", "p" * 129, None, "password"),
        ("carol", PASSWORD, "", "display_name"),
        ("carol", PASSWORD, "   ", "display_name"),
        ("carol", PASSWORD, "d" * 65, "display_name"),
        ("carol", PASSWORD, "tab\there", "display_name"),
        ("carol", PASSWORD, "new\nline", "display_name"),
    ],
)
async def test_register_validation(
    service: IdentityService,
    store: Store,
    username: str,
    password: str,
    display_name: str | None,
    field: str,
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await service.register(username, password, display_name, client="10.0.0.1")
    assert [d["field"] for d in caught.value.details or []] == [field]
    assert await store.get_user_by_username(username) is None


async def test_register_duplicate(service: IdentityService) -> None:
    await service.register("dave", PASSWORD, client="10.0.0.1")
    with pytest.raises(UsernameTaken):
        await service.register("dave", "another password", client="10.0.0.2")


async def test_register_is_rate_limited_per_client(
    store: Store, hasher: PasswordHasher, verifier: TokenVerifier, limiter: LimitsRateLimiter
) -> None:
    service = make_service(store, hasher, verifier, limiter, register_limit="2/hour")
    with pytest.raises(ValidationFailed):  # invalid input does not use up the allowance
        await service.register("x", PASSWORD, client="10.0.0.1")
    await service.register("user1", PASSWORD, client="10.0.0.1")
    await service.register("user2", PASSWORD, client="10.0.0.1")
    with pytest.raises(RateLimited) as caught:
        await service.register("user3", PASSWORD, client="10.0.0.1")
    assert caught.value.retry_after >= 1
    assert await store.get_user_by_username("user3") is None
    await service.register("user3", PASSWORD, client="10.0.0.2")


# -- login ----------------------------------------------------------------------------------------


async def test_login_then_authenticate(service: IdentityService) -> None:
    user = await service.register("erin", PASSWORD, "Erin", client="10.0.0.1")
    token, expires_in = await service.login("erin", PASSWORD, client="10.0.0.1")
    assert expires_in == 600
    principal = await service.authenticate(token)
    assert principal == Principal(user.user_id, "Erin", principal.expires_at, False)
    assert abs(principal.expires_at - (time.time() + 600)) < 5


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("frank", "wrong password"),
        ("frank", ""),
        ("frank", "p" * 500),
        ("nobody", PASSWORD),
        ("Frank", PASSWORD),
        ("no such name!", PASSWORD),
    ],
)
async def test_login_refusals_all_look_alike(
    service: IdentityService, username: str, password: str
) -> None:
    await service.register("frank", PASSWORD, client="10.0.0.1")
    with pytest.raises(InvalidCredentials) as caught:
        await service.login(username, password, client="10.0.0.1")
    assert caught.value.message == InvalidCredentials.default_message


async def test_deleted_user_cannot_log_in(service: IdentityService) -> None:
    user = await service.register("grace", PASSWORD, client="10.0.0.1")
    token, _ = await service.login("grace", PASSWORD, client="10.0.0.1")
    await service.delete_me(user.user_id)
    with pytest.raises(InvalidCredentials):
        await service.login("grace", PASSWORD, client="10.0.0.1")
    with pytest.raises(Unauthenticated):
        await service.authenticate(token)


class CountingHash(PasswordHash):
    """pwdlib's Argon2, counting the verifications it really runs."""

    def __init__(self) -> None:
        super().__init__((Argon2Hasher(parallelism=1),))
        self.verified = 0

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        self.verified += 1
        return super().verify(password, hash)


async def test_unknown_user_costs_as_much_as_a_wrong_password(
    store: Store, verifier: TokenVerifier, limiter: LimitsRateLimiter
) -> None:
    """No timing oracle: a sign-in for an unknown username runs one full Argon2 verification
    (against a real dummy hash), exactly as a wrong password for a real user does. Counted,
    not timed: the suite's timings are too noisy to assert on."""
    counting = CountingHash()
    hasher = PasswordHasher(4, password_hash=counting)
    service = make_service(store, hasher, verifier, limiter)
    await service.register("heidi", PASSWORD, client="10.0.0.1")
    for username in ("heidi", "nobody", "heidi", "nobody"):
        before = counting.verified
        with pytest.raises(InvalidCredentials):
            await service.login(username, "wrong password", client="10.0.0.1")
        assert counting.verified - before == 1, username
    hasher.close()


async def test_strangers_cannot_lock_a_user_out(
    store: Store, hasher: PasswordHasher, verifier: TokenVerifier, limiter: LimitsRateLimiter
) -> None:
    """Wrong passwords from one address use up that address's allowance for the account, not
    the account's: the real user signs in from their own address meanwhile."""
    service = make_service(store, hasher, verifier, limiter, login_limit="3/minute")
    await service.register("ivan", PASSWORD, client="10.0.0.1")
    for _ in range(3):
        with pytest.raises(InvalidCredentials):
            await service.login("ivan", "guess", client="10.0.1.1")
    with pytest.raises(RateLimited) as caught:
        await service.login("IVAN", PASSWORD, client="10.0.1.1")  # case does not dodge it
    assert 1 <= caught.value.retry_after <= 60
    token, _ = await service.login("ivan", PASSWORD, client="10.0.0.2")
    assert token


async def test_one_address_guessing_one_account_is_stopped(
    store: Store, hasher: PasswordHasher, verifier: TokenVerifier, limiter: LimitsRateLimiter
) -> None:
    service = make_service(
        store, hasher, verifier, limiter, login_limit="3/minute", login_address_limit="100/minute"
    )
    await service.register("ivy", PASSWORD, client="10.0.0.1")
    for _ in range(3):
        with pytest.raises(InvalidCredentials):
            await service.login("ivy", "guess", client="10.6.6.6")
    with pytest.raises(RateLimited):  # even the right password waits, from that address
        await service.login("ivy", PASSWORD, client="10.6.6.6")


async def test_login_is_limited_per_address_across_usernames(
    store: Store, hasher: PasswordHasher, verifier: TokenVerifier, limiter: LimitsRateLimiter
) -> None:
    service = make_service(store, hasher, verifier, limiter, login_limit="3/minute")
    await service.register("judy", PASSWORD, client="10.0.0.1")
    for name in ("a-1", "a-2", "a-3"):
        with pytest.raises(InvalidCredentials):
            await service.login(name, "guess", client="10.9.9.9")
    with pytest.raises(RateLimited):
        await service.login("judy", PASSWORD, client="10.9.9.9")
    token, _ = await service.login("judy", PASSWORD, client="10.0.0.2")
    assert token


# -- authenticate ---------------------------------------------------------------------------------


async def test_authenticate_refuses_bad_tokens(service: IdentityService) -> None:
    with pytest.raises(Unauthenticated):
        await service.authenticate("not a token")
    ghost, _ = TokenIssuer(SECRET, issuer=ISSUER, ttl_seconds=600).issue("no-such-user")
    with pytest.raises(Unauthenticated):
        await service.authenticate(ghost)
    now = int(time.time())
    expired = jwt.encode(
        {"iss": ISSUER, "sub": "x", "iat": now - 99, "exp": now - 9, "jti": "j"}, SECRET
    )
    with pytest.raises(Unauthenticated, match="expired"):
        await service.authenticate(expired)


async def test_external_user_is_provisioned_once(
    service: IdentityService,
    store: Store,
    provider: Provider,  # noqa: F811
) -> None:
    first = await service.authenticate(rs256(provider))
    assert first.external is True
    assert first.display_name == "Ada Lovelace"
    again = await service.authenticate(rs256(provider, name="Renamed"))
    assert again.user_id == first.user_id
    user = await store.get_user(first.user_id)
    assert user is not None
    assert (user.username, user.password_hash) == ("ada", None)
    assert user.external_subject == f"{EXT_ISSUER}|user-42"
    with pytest.raises(InvalidCredentials):  # no password: cannot log in with one
        await service.login("ada", "", client="10.0.0.1")


async def test_external_username_collision_gets_a_suffix(
    service: IdentityService,
    store: Store,
    provider: Provider,  # noqa: F811
) -> None:
    local = await service.register("ada", PASSWORD, client="10.0.0.1")
    principal = await service.authenticate(rs256(provider, sub="ext-ada"))
    assert principal.user_id != local.user_id
    user = await store.get_user(principal.user_id)
    assert user is not None and user.username.startswith("ada-") and len(user.username) == 10
    token, _ = await service.login("ada", PASSWORD, client="10.0.0.1")
    assert (await service.authenticate(token)).user_id == local.user_id


@pytest.mark.parametrize(
    ("preferred", "name", "username", "display_name"),
    [
        (None, None, r"ext-[0-9a-f]{12}", "sub-77"),
        ("x", None, r"ext-[0-9a-f]{12}", "x"),
        ("Ada Lovelace!", None, "AdaLovelace", "Ada Lovelace!"),
        ("p" * 40, "\u200bName\x00", "p" * 32, "Name"),
    ],
)
async def test_external_usernames_are_derived(
    service: IdentityService,
    store: Store,
    provider: Provider,  # noqa: F811
    preferred: str | None,
    name: str | None,
    username: str,
    display_name: str,
) -> None:
    token = rs256(provider, sub="sub-77", preferred_username=preferred, name=name)
    principal = await service.authenticate(token)
    user = await store.get_user(principal.user_id)
    assert user is not None
    assert re.fullmatch(username, user.username)
    assert principal.display_name == display_name


async def test_concurrent_first_sight_makes_one_account(
    service: IdentityService,
    provider: Provider,  # noqa: F811
) -> None:
    tokens = [rs256(provider, sub="racer", preferred_username="racer") for _ in range(5)]
    principals = await asyncio.gather(*(service.authenticate(t) for t in tokens))
    assert len({p.user_id for p in principals}) == 1


async def test_deleted_external_user_is_not_recreated(
    service: IdentityService,
    store: Store,
    provider: Provider,  # noqa: F811
) -> None:
    principal = await service.authenticate(rs256(provider, sub="leaver"))
    await service.delete_me(principal.user_id)
    with pytest.raises(Unauthenticated):
        await service.authenticate(rs256(provider, sub="leaver"))
    assert await store.get_user_by_subject(f"{EXT_ISSUER}|leaver") is not None


async def test_external_accounts_are_cached_within_the_bound(
    store: Store,
    hasher: PasswordHasher,
    verifier: TokenVerifier,
    limiter: LimitsRateLimiter,
    provider: Provider,  # noqa: F811
) -> None:
    """A deletion by another process (here: the store directly) reaches reads only when the
    account's cache entry expires; with no cache, at once."""
    cached = make_service(store, hasher, verifier, limiter)
    uncached = make_service(store, hasher, verifier, limiter, account_cache_seconds=0)
    principal = await cached.authenticate(rs256(provider, sub="elsewhere"))
    assert (await uncached.authenticate(rs256(provider, sub="elsewhere"))) == principal
    assert await store.delete_user(principal.user_id)
    assert (
        await cached.authenticate(rs256(provider, sub="elsewhere"))
    ).user_id == principal.user_id
    with pytest.raises(Unauthenticated):
        await uncached.authenticate(rs256(provider, sub="elsewhere"))


async def test_external_token_with_wrong_audience(
    service: IdentityService,
    provider: Provider,  # noqa: F811
) -> None:
    with pytest.raises(Unauthenticated, match="audience"):
        await service.authenticate(rs256(provider, aud="elsewhere"))


# -- delete_me ------------------------------------------------------------------------------------


async def test_delete_me(
    store: Store, hasher: PasswordHasher, verifier: TokenVerifier, limiter: LimitsRateLimiter
) -> None:
    deleted: list[str] = []

    async def on_deleted(user_id: str) -> None:
        deleted.append(user_id)

    service = make_service(store, hasher, verifier, limiter, on_deleted=on_deleted)
    user = await service.register("mallory", PASSWORD, client="10.0.0.1")
    await service.delete_me(user.user_id)
    assert deleted == [user.user_id]
    record = await store.get_user(user.user_id)
    assert record is not None and not record.active
    with pytest.raises(NotFound):
        await service.delete_me(user.user_id)
    with pytest.raises(NotFound):
        await service.delete_me("no-such-user")
    assert deleted == [user.user_id]
