"""`SqlStore`'s refresh tokens (store/sql_sessions.py), on SQLite and PostgreSQL: the
contract of `Store.rotate_refresh_token` and `revoke_refresh_family` below the service."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from scoreboard.store.sql import SqlStore

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)
LATER = NOW + timedelta(days=30)


async def new_token(store: SqlStore, token_hash: str, family_id: str, user_id: str) -> None:
    await store.add_refresh_token(
        token_hash, family_id=family_id, user_id=user_id, created_at=NOW, expires_at=LATER
    )


async def test_of_concurrent_rotations_of_one_token_exactly_one_rotates(store: SqlStore) -> None:
    user = await store.create_user("ann", None, "Ann")
    for n in range(3):
        await new_token(store, f"t{n}", f"f{n}", user.user_id)
        rotations = await asyncio.gather(
            *(
                store.rotate_refresh_token(f"t{n}", f"t{n}-{i}", now=NOW, expires_at=LATER)
                for i in range(8)
            )
        )
        outcomes = sorted(r.outcome for r in rotations)
        assert outcomes == ["reused"] * 7 + ["rotated"], outcomes
        (winner,) = (r for r in rotations if r.outcome == "rotated")
        assert winner.user is not None and winner.user.user_id == user.user_id


async def test_a_rotation_continues_the_family_and_checks_expiry(store: SqlStore) -> None:
    user = await store.create_user("bob", None, "Bob")
    await new_token(store, "a", "fam", user.user_id)
    rotated = await store.rotate_refresh_token("a", "b", now=NOW, expires_at=NOW)
    assert rotated.outcome == "rotated"
    # "b" expires at NOW: refused from then on, and no family is revoked by that.
    assert (await store.rotate_refresh_token("b", "c", now=NOW, expires_at=LATER)).outcome == (
        "refused"
    )
    assert (await store.rotate_refresh_token("zz", "c", now=NOW, expires_at=LATER)).outcome == (
        "refused"
    )
    assert await store.revoke_refresh_family("b", now=NOW)  # "b" is of "a"'s family
    assert not await store.revoke_refresh_family("zz", now=NOW)


async def test_a_token_minted_after_its_family_was_revoked_never_rotates(store: SqlStore) -> None:
    """What a rotation committed while a logout revoked its family leaves behind (on
    PostgreSQL the new row can miss the revoking statement's snapshot): a token of a revoked
    family that is not itself marked revoked. The family check refuses it."""
    user = await store.create_user("cid", None, "Cid")
    await new_token(store, "a", "fam", user.user_id)
    assert await store.revoke_refresh_family("a", now=NOW)
    await new_token(store, "late", "fam", user.user_id)
    rotation = await store.rotate_refresh_token("late", "next", now=NOW, expires_at=LATER)
    assert rotation.outcome == "refused"
    await new_token(store, "other", "fam2", user.user_id)  # another family is untouched
    rotation = await store.rotate_refresh_token("other", "next", now=NOW, expires_at=LATER)
    assert rotation.outcome == "rotated"


async def test_a_deleted_users_tokens_are_refused(store: SqlStore) -> None:
    user = await store.create_user("dee", None, "Dee")
    await new_token(store, "a", "fam", user.user_id)
    assert await store.delete_user(user.user_id)
    rotation = await store.rotate_refresh_token("a", "b", now=NOW, expires_at=LATER)
    assert rotation.outcome == "refused" and rotation.user is None


async def test_a_ban_revokes_every_token_of_the_user_in_its_transaction(store: SqlStore) -> None:
    ann = await store.create_user("ann_b", None, "Ann")
    bob = await store.create_user("bob_b", None, "Bob")
    await new_token(store, "a1", "fa1", ann.user_id)
    await new_token(store, "a2", "fa2", ann.user_id)
    await new_token(store, "b1", "fb1", bob.user_id)
    assert (await store.rotate_refresh_token("a1", "a1b", now=NOW, expires_at=LATER)).outcome == (
        "rotated"
    )
    banned = await store.set_status(ann.user_id, "banned")
    assert banned is not None and banned.status == "banned"
    for token in ("a1b", "a2"):
        rotation = await store.rotate_refresh_token(token, "x" + token, now=NOW, expires_at=LATER)
        assert rotation.outcome == "refused", token
    await new_token(store, "a3", "fa3", ann.user_id)  # a sign-in while banned
    assert (await store.rotate_refresh_token("a3", "a3b", now=NOW, expires_at=LATER)).outcome == (
        "refused"
    )
    await store.set_status(ann.user_id, "active")
    for token in ("a1b", "a2"):  # revoked: an unban brings no session back
        rotation = await store.rotate_refresh_token(token, "y" + token, now=NOW, expires_at=LATER)
        assert rotation.outcome == "refused", token
    assert (await store.rotate_refresh_token("a3", "a3c", now=NOW, expires_at=LATER)).outcome == (
        "rotated"
    )
    await store.set_status(bob.user_id, "quarantined")  # ends nothing
    assert (await store.rotate_refresh_token("b1", "b2", now=NOW, expires_at=LATER)).outcome == (
        "rotated"
    )
