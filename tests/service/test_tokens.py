"""Tokens: our own HS256 tokens and an external provider's RS256/ES256 tokens, end to end.

The external provider is real enough: fresh RSA and EC key pairs, and a JWKS document served
over HTTP by a server this module starts on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from scoreboard.config import Settings
from scoreboard.domain.errors import ServiceUnavailable, Unauthenticated
from scoreboard.service.tokens import (
    ExternalProvider,
    TokenIssuer,
    TokenVerifier,
    load_or_create_secret,
)

SECRET = "test-secret-" + "x" * 40
ISSUER = "scoreboard"
EXT_ISSUER = "https://idp.example.test/"
AUDIENCE = "scoreboard-api"


@dataclass
class Provider:
    """A stand-in identity provider: its private keys and the URL of its JWKS."""

    rsa_key: rsa.RSAPrivateKey
    ec_key: ec.EllipticCurvePrivateKey
    url: str
    hits: list[str]

    def rsa_public_pem(self) -> bytes:
        return self.rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def _jwks(rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> bytes:
    rsa_jwk = RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    ec_jwk = ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True)
    rsa_jwk.update(kid="rsa-1", use="sig")
    ec_jwk.update(kid="ec-1", use="sig")
    return json.dumps({"keys": [rsa_jwk, ec_jwk]}).encode()


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    body = _jwks(rsa_key, ec_key)
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            if self.path != "/.well-known/jwks.json":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        yield Provider(rsa_key, ec_key, f"http://127.0.0.1:{port}/.well-known/jwks.json", hits)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def make_verifier(provider: Provider | None = None, **kwargs: Any) -> TokenVerifier:
    ext = None
    if provider is not None:
        ext = ExternalProvider(
            jwks_url=provider.url,
            issuer=EXT_ISSUER,
            audience=AUDIENCE,
            algorithms=frozenset({"RS256", "ES256"}),
        )
    return TokenVerifier(SECRET, issuer=ISSUER, provider=ext, **kwargs)


def external_claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": EXT_ISSUER,
        "aud": AUDIENCE,
        "sub": "user-42",
        "iat": now,
        "exp": now + 600,
        "name": "Ada Lovelace",
        "preferred_username": "ada",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def builtin_claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "u-1",
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed_hs256(claims: dict[str, Any], key: bytes, kid: str | None = None) -> str:
    """An HS256 token signed with any bytes as the HMAC key; PyJWT refuses to do this with a
    PEM public key, which is exactly what the algorithm-confusion attack needs."""
    header: dict[str, Any] = {"alg": "HS256", "typ": "JWT"}
    if kid:
        header["kid"] = kid
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def unsigned(claims: dict[str, Any], kid: str | None = None) -> str:
    header: dict[str, Any] = {"alg": "none", "typ": "JWT"}
    if kid:
        header["kid"] = kid
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}."


def tamper(token: str, **changes: Any) -> str:
    """The same header and signature around a modified payload."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return f"{header}.{b64(json.dumps(claims).encode())}.{signature}"


async def rejected(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(token)
    return caught.value.message


# -- built-in tokens ------------------------------------------------------------------------------


async def test_issue_then_verify() -> None:
    issuer = TokenIssuer(SECRET, issuer=ISSUER, ttl_seconds=900)
    token, expires_in = issuer.issue("user-7")
    assert expires_in == 900
    claims = await make_verifier().verify(token)
    assert claims.subject == "user-7"
    assert claims.issuer == ISSUER
    assert claims.external is False
    assert abs(claims.expires_at - (time.time() + 900)) < 5
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    payload = jwt.decode(token, SECRET, algorithms=["HS256"], issuer=ISSUER)
    assert set(payload) == {"iss", "sub", "iat", "exp", "jti"}


async def test_each_token_has_its_own_id() -> None:
    issuer = TokenIssuer(SECRET, issuer=ISSUER, ttl_seconds=900)
    ids = {jwt.decode(issuer.issue("u")[0], SECRET, algorithms=["HS256"])["jti"] for _ in range(5)}
    assert len(ids) == 5


async def test_expired_builtin_token() -> None:
    token = jwt.encode(builtin_claims(exp=int(time.time()) - 10), SECRET, algorithm="HS256")
    assert await rejected(make_verifier(), token) == "Authentication token expired."


async def test_wrong_secret() -> None:
    token = jwt.encode(builtin_claims(), "another-secret-" + "y" * 40, algorithm="HS256")
    assert "signature" in await rejected(make_verifier(), token)


async def test_hs256_with_another_issuer_is_refused() -> None:
    token = jwt.encode(builtin_claims(iss="someone-else"), SECRET, algorithm="HS256")
    assert "issuer" in await rejected(make_verifier(), token)


@pytest.mark.parametrize("claim", ["exp", "sub", "iat", "iss", "jti"])
async def test_missing_required_claim(claim: str) -> None:
    token = jwt.encode(builtin_claims(**{claim: None}), SECRET, algorithm="HS256")
    assert claim in await rejected(make_verifier(), token)


async def test_empty_subject() -> None:
    token = jwt.encode(builtin_claims(sub=""), SECRET, algorithm="HS256")
    await rejected(make_verifier(), token)


async def test_other_hmac_algorithms_are_refused() -> None:
    token = jwt.encode(builtin_claims(), SECRET, algorithm="HS384")
    assert "algorithm" in await rejected(make_verifier(), token)


async def test_alg_none_is_refused() -> None:
    assert "algorithm" in await rejected(make_verifier(), unsigned(builtin_claims()))
    via_pyjwt = jwt.encode(builtin_claims(), "", algorithm="none")
    await rejected(make_verifier(), via_pyjwt)


async def test_tampered_builtin_payload() -> None:
    token, _ = TokenIssuer(SECRET, issuer=ISSUER, ttl_seconds=900).issue("user-7")
    assert "signature" in await rejected(make_verifier(), tamper(token, sub="admin"))


@pytest.mark.parametrize(
    "garbage",
    ["", "abc", "a.b.c", "...", "eyJhbGciOiJIUzI1NiJ9", "eyJhbGciOiJIUzI1NiJ9.e30", "x" * 9000],
)
async def test_garbage(garbage: str) -> None:
    await rejected(make_verifier(), garbage)


async def test_header_alg_of_wrong_type() -> None:
    header = b64(json.dumps({"alg": ["RS256"], "typ": "JWT"}).encode())
    token = f"{header}.{b64(json.dumps(builtin_claims()).encode())}.c2ln"
    await rejected(make_verifier(), token)


async def test_asymmetric_algorithms_refused_without_a_provider(provider: Provider) -> None:
    token = jwt.encode(external_claims(), provider.rsa_key, "RS256", headers={"kid": "rsa-1"})
    assert "algorithm" in await rejected(make_verifier(), token)


# -- external provider tokens ---------------------------------------------------------------------


async def test_external_rs256(provider: Provider) -> None:
    token = jwt.encode(external_claims(), provider.rsa_key, "RS256", headers={"kid": "rsa-1"})
    claims = await make_verifier(provider).verify(token)
    assert claims.external is True
    assert (claims.subject, claims.issuer) == ("user-42", EXT_ISSUER)
    assert (claims.name, claims.preferred_username) == ("Ada Lovelace", "ada")


async def test_external_es256(provider: Provider) -> None:
    claims_in = external_claims(name=None, preferred_username=None)
    token = jwt.encode(claims_in, provider.ec_key, "ES256", headers={"kid": "ec-1"})
    claims = await make_verifier(provider).verify(token)
    assert claims.external is True
    assert claims.subject == "user-42"
    assert claims.name is None and claims.preferred_username is None
    assert claims.expires_at == claims_in["exp"]


async def test_keys_are_cached(provider: Provider) -> None:
    verifier = make_verifier(provider)
    before = len(provider.hits)
    for _ in range(3):
        token = jwt.encode(external_claims(), provider.rsa_key, "RS256", headers={"kid": "rsa-1"})
        await verifier.verify(token)
    assert len(provider.hits) - before == 1


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iss": "https://evil.example.test/"}, "issuer"),
        ({"iss": ISSUER}, "issuer"),
        ({"aud": "another-api"}, "audience"),
        ({"aud": None}, "aud"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"exp": None}, "exp"),
        ({"iat": None}, "iat"),
        ({"sub": None}, "sub"),
    ],
)
@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_external_claims_are_checked(
    provider: Provider, alg: str, changes: dict[str, Any], reason: str
) -> None:
    key, kid = (provider.rsa_key, "rsa-1") if alg == "RS256" else (provider.ec_key, "ec-1")
    token = jwt.encode(external_claims(**changes), key, alg, headers={"kid": kid})
    assert reason in await rejected(make_verifier(provider), token)


async def test_expired_external_message(provider: Provider) -> None:
    claims = external_claims(exp=int(time.time()) - 3600)
    token = jwt.encode(claims, provider.rsa_key, "RS256", headers={"kid": "rsa-1"})
    assert await rejected(make_verifier(provider), token) == "Authentication token expired."


async def test_signed_by_a_key_not_in_the_jwks(provider: Provider) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    verifier = make_verifier(provider)
    posing = jwt.encode(external_claims(), stranger, "RS256", headers={"kid": "rsa-1"})
    assert "signature" in await rejected(verifier, posing)
    unknown = jwt.encode(external_claims(), stranger, "RS256", headers={"kid": "stranger"})
    assert "key" in await rejected(verifier, unknown)
    no_kid = jwt.encode(external_claims(), provider.rsa_key, "RS256")
    assert "key" in await rejected(verifier, no_kid)


async def test_hs256_signed_with_the_rsa_public_key(provider: Provider) -> None:
    """Algorithm confusion: the provider's public key used as an HMAC secret."""
    verifier = make_verifier(provider)
    pem = provider.rsa_public_pem()
    jwk_json = json.dumps(RSAAlgorithm.to_jwk(provider.rsa_key.public_key(), as_dict=True))
    for secret in (pem, pem.strip(), jwk_json.encode()):
        for claims in (external_claims(), builtin_claims(), external_claims(iss=ISSUER)):
            await rejected(verifier, hand_signed_hs256(claims, secret, kid="rsa-1"))
    # The forging code is right: the same forgery with our secret passes.
    forged = hand_signed_hs256(builtin_claims(), SECRET.encode())
    assert (await verifier.verify(forged)).subject == "u-1"


async def test_alg_none_with_external_claims(provider: Provider) -> None:
    verifier = make_verifier(provider)
    assert "algorithm" in await rejected(verifier, unsigned(external_claims(), kid="rsa-1"))


async def test_tampered_external_payload(provider: Provider) -> None:
    verifier = make_verifier(provider)
    for key, alg, kid in ((provider.rsa_key, "RS256", "rsa-1"), (provider.ec_key, "ES256", "ec-1")):
        token = jwt.encode(external_claims(), key, alg, headers={"kid": kid})
        assert "signature" in await rejected(verifier, tamper(token, sub="someone-else"))


async def test_algorithm_must_match_the_key(provider: Provider) -> None:
    verifier = make_verifier(provider)
    ec_as_rsa = jwt.encode(external_claims(), provider.ec_key, "ES256", headers={"kid": "rsa-1"})
    assert "algorithm" in await rejected(verifier, ec_as_rsa)
    pss = jwt.encode(external_claims(), provider.rsa_key, "PS256", headers={"kid": "rsa-1"})
    assert "algorithm" in await rejected(verifier, pss)


async def test_unreachable_jwks_is_unavailable_not_unauthenticated(provider: Provider) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ext = ExternalProvider(
        jwks_url=f"http://127.0.0.1:{port}/jwks.json",
        issuer=EXT_ISSUER,
        audience=AUDIENCE,
        algorithms=frozenset({"RS256"}),
    )
    verifier = TokenVerifier(SECRET, issuer=ISSUER, provider=ext, jwks_timeout=2)
    token = jwt.encode(external_claims(), provider.rsa_key, "RS256", headers={"kid": "rsa-1"})
    with pytest.raises(ServiceUnavailable):
        await verifier.verify(token)


async def test_from_settings(provider: Provider, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        jwt_secret=SECRET,
        token_ttl_seconds=120,
        jwks_url=provider.url,
        external_issuer=EXT_ISSUER,
        external_audience=AUDIENCE,
    )
    secret = load_or_create_secret(settings)
    token, expires_in = TokenIssuer.from_settings(settings, secret).issue("u-9")
    verifier = TokenVerifier.from_settings(settings, secret)
    assert expires_in == 120
    assert (await verifier.verify(token)).subject == "u-9"
    ext = jwt.encode(external_claims(), provider.ec_key, "ES256", headers={"kid": "ec-1"})
    assert (await verifier.verify(ext)).external


@pytest.mark.parametrize(
    "bad",
    [
        {"issuer": ""},
        {"audience": ""},
        {"algorithms": frozenset({"RS256", "HS256"})},
        {"algorithms": frozenset()},
    ],
)
def test_provider_configuration_is_checked(bad: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "jwks_url": "http://127.0.0.1:1/jwks.json",
        "issuer": EXT_ISSUER,
        "audience": AUDIENCE,
        "algorithms": frozenset({"RS256"}),
    }
    with pytest.raises(ValueError):
        ExternalProvider(**(fields | bad))


def test_external_issuer_must_differ_from_ours() -> None:
    ext = ExternalProvider("http://127.0.0.1:1/j", ISSUER, AUDIENCE, frozenset({"RS256"}))
    with pytest.raises(ValueError):
        TokenVerifier(SECRET, issuer=ISSUER, provider=ext)


# -- the secret -----------------------------------------------------------------------------------


def test_configured_secret_wins(tmp_path: Path) -> None:
    assert load_or_create_secret(Settings(data_dir=tmp_path, jwt_secret=SECRET)) == SECRET
    assert not (tmp_path / "jwt-secret").exists()


def test_short_configured_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        load_or_create_secret(Settings(data_dir=tmp_path, jwt_secret="short"))


async def test_generated_secret_survives_a_restart(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "nested" / "data", jwt_secret="")
    secret = load_or_create_secret(settings)
    path = tmp_path / "nested" / "data" / "jwt-secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(secret) >= 48
    token, _ = TokenIssuer.from_settings(settings, secret).issue("u-1")
    # "Restart": everything rebuilt from the settings and the file.
    again = load_or_create_secret(settings)
    assert again == secret
    assert (await TokenVerifier.from_settings(settings, again).verify(token)).subject == "u-1"
    assert [p.name for p in path.parent.iterdir()] == ["jwt-secret"]  # no temporary files left


def test_concurrent_first_starts_agree_on_one_secret(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret="")
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: load_or_create_secret(settings), range(16)))
    assert len(secrets) == 1


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", ["{future}", True, float("nan"), "1e12", [1], None])
async def test_numeric_dates_must_be_numbers(claim: str, value: Any) -> None:
    """PyJWT accepts `"exp": "<digits>"` (it converts with int()): such a token is refused."""
    future = int(time.time()) + 3600
    if value == "{future}":
        value = str(future)
    if value is None:  # a JSON object where a number belongs
        value = {"seconds": future}
    claims = builtin_claims(**{claim: value})
    if claim == "nbf" or claim == "iat":
        claims["exp"] = future
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    await rejected(make_verifier(), token)


async def test_numeric_dates_as_floats_are_accepted() -> None:
    now = time.time()
    claims = builtin_claims(iat=now, nbf=now - 1, exp=now + 600)
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    assert (await make_verifier().verify(token)).expires_at == pytest.approx(now + 600)
