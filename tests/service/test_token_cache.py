"""The verified-token cache (`service.claims.VerifiedTokens`, used by `TokenVerifier.verify`):
a token verified once is served from it until it expires, and nothing else ever is."""

from __future__ import annotations

import asyncio
import time

import jwt

from scoreboard.service.claims import Claims, VerifiedTokens, expiry_deadline
from scoreboard.service.tokens import TokenIssuer, TokenVerifier

from .test_tokens import ISSUER, SECRET, builtin_claims, make_verifier, rejected, tamper


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def claims(subject: str, exp: float) -> Claims:
    return Claims(subject=subject, issuer=ISSUER, expires_at=exp, external=False)


def test_an_entry_is_served_until_its_deadline_and_not_at_it() -> None:
    clock = Clock(1_000.0)
    cache = VerifiedTokens(8, clock)
    key = cache.key("token-a")
    cache.put(key, claims("a", 1_010.5), expiry_deadline(claims("a", 1_010.5), 0.0))
    clock.now = 1_009.999
    assert cache.get(key) == claims("a", 1_010.5)
    clock.now = 1_010.0  # PyJWT compares int(exp): refused from 1010 on, and so is the entry
    assert cache.get(key) is None
    clock.now = 1_000.0
    assert cache.get(key) is None  # dropped once expired, even if the clock steps back


def test_the_leeway_extends_the_deadline_exactly() -> None:
    assert expiry_deadline(claims("a", 1_010.9), 30.0) == 1_040.0


def test_an_expired_entry_is_never_stored() -> None:
    clock = Clock(2_000.0)
    cache = VerifiedTokens(8, clock)
    cache.put(cache.key("t"), claims("a", 1_999.0), 1_999.0)
    assert len(cache) == 0


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    cache = VerifiedTokens(3, Clock(0.0))
    keys = [cache.key(f"token-{i}") for i in range(5)]
    for i, key in enumerate(keys[:3]):
        cache.put(key, claims(str(i), 100.0), 100.0)
    assert cache.get(keys[0]) is not None  # now the most recently used
    for i, key in enumerate(keys[3:], start=3):
        cache.put(key, claims(str(i), 100.0), 100.0)
    assert len(cache) == 3
    assert cache.get(keys[1]) is None and cache.get(keys[2]) is None
    assert [cache.get(k) is not None for k in (keys[0], keys[3], keys[4])] == [True] * 3


def test_keys_differ_for_tokens_differing_in_one_byte() -> None:
    assert VerifiedTokens.key("aaa.bbb.ccc") != VerifiedTokens.key("aaa.bbb.ccd")


async def test_a_forged_signature_is_refused_right_after_the_real_token() -> None:
    verifier = make_verifier()
    token, _ = TokenIssuer(SECRET, issuer=ISSUER, ttl_seconds=900).issue("user-7")
    assert (await verifier.verify(token)).subject == "user-7"
    header, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert "signature" in await rejected(verifier, f"{header}.{payload}.{flipped}")
    assert "signature" in await rejected(verifier, tamper(token, sub="admin"))
    assert (await verifier.verify(token)).subject == "user-7"  # the real one still works


async def test_each_token_gets_its_own_claims() -> None:
    verifier = make_verifier()
    issuer = TokenIssuer(SECRET, issuer=ISSUER, ttl_seconds=900)
    tokens = {f"user-{i}": issuer.issue(f"user-{i}")[0] for i in range(20)}
    for _ in range(2):
        for user, token in tokens.items():
            assert (await verifier.verify(token)).subject == user


async def test_a_cached_token_still_expires_on_time() -> None:
    verifier = make_verifier()
    exp = int(time.time()) + 1
    token = jwt.encode(builtin_claims(exp=exp), SECRET, algorithm="HS256")
    assert (await verifier.verify(token)).expires_at == exp
    await asyncio.sleep(max(0.0, exp - time.time()) + 0.01)
    assert await rejected(verifier, token) == "Authentication token expired."


async def test_the_verifier_serves_from_its_cache_until_exp_by_its_clock() -> None:
    """With the clock past `exp`, the cache no longer answers: the token is decoded again
    (PyJWT, on the real clock, still accepts it), and is not stored again."""
    now = time.time()
    clock = Clock(now)
    verifier = TokenVerifier(SECRET, issuer=ISSUER, clock=clock, cache_size=4)
    token = jwt.encode(builtin_claims(exp=int(now) + 600), SECRET, algorithm="HS256")
    first = await verifier.verify(token)
    assert await verifier.verify(token) is first  # the cached object itself
    clock.now = int(now) + 600
    again = await verifier.verify(token)
    assert again == first and again is not first  # verified afresh
    assert await verifier.verify(token) is not again  # and not kept past its deadline
