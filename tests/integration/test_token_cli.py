# SPDX-License-Identifier: Apache-2.0
"""
pigeon-token (clients/pigeon_token.c) against PyJWT, an independent JWT
implementation: what it mints PyJWT verifies, what PyJWT mints it verifies,
and what is bad it refuses with the reason (docs/auth.md).

  mint    prints the token, exit 0
  verify  prints the claims as JSON, exit 0; "invalid: <status>: <why>", exit 1
  usage errors exit 2
"""

import json
import os
import re
import subprocess
import time

import jwt
import pytest

from harness import (CONNACK_OK, OMIT, SANITIZE, SANITIZER_LOG_RE, build_path, replace_claims,
                     unsigned_token)

ALGS = ["HS256", "ES256", "EdDSA"]


def pigeon_token(*args, stdin=None):
    env = dict(os.environ)
    if SANITIZE:
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    p = subprocess.run([str(build_path("bin", "pigeon-token"))] + [str(a) for a in args],
                       input=stdin, capture_output=True, text=True, timeout=20, env=env)
    assert not SANITIZER_LOG_RE.search(p.stderr), p.stderr
    return p


def mint_args(keys, alg):
    return ["--secret-file", keys.secret_file] if alg == "HS256" else \
        ["--key-file", keys.es256_key_file if alg == "ES256" else keys.eddsa_key_file]


def verify_args(keys, alg):
    return ["--secret-file", keys.secret_file] if alg == "HS256" else \
        ["--public-key-file", keys.es256_pub_file if alg == "ES256" else keys.eddsa_pub_file]


def mint(keys, alg, *extra):
    p = pigeon_token("mint", *mint_args(keys, alg), *extra)
    assert p.returncode == 0, p.stderr
    tok = p.stdout.strip()
    assert tok.count(".") == 2 and "\n" not in tok
    return tok


# ------------------------------------------------------------------- mint


@pytest.mark.parametrize("alg", ALGS)
def test_minted_token_verifies_with_pyjwt(keys, alg):
    now = int(time.time())
    tok = mint(keys, alg, "--sub", "alice", "--dev", "phone", "--jti", "j-1", "--ttl", 120)
    assert jwt.get_unverified_header(tok) == {"alg": alg, "typ": "JWT"}
    claims = jwt.decode(tok, keys.public_key(alg), algorithms=[alg])
    assert {k: claims[k] for k in ("sub", "dev", "jti")} == {"sub": "alice", "dev": "phone",
                                                             "jti": "j-1"}
    assert abs(claims["iat"] - now) <= 5
    assert claims["exp"] == claims["iat"] + 120
    assert "role" not in claims  # user is the default and is not written
    assert "nbf" not in claims


def test_minted_service_token_carries_its_role(keys):
    claims = jwt.decode(mint(keys, "HS256", "--sub", "svc", "--role", "service"), keys.secret,
                        algorithms=["HS256"])
    assert claims["role"] == "service"
    assert claims["exp"] - claims["iat"] == 3600  # the default ttl


def test_mint_without_iat_and_with_nbf(keys):
    nbf = int(time.time()) - 10
    claims = jwt.decode(mint(keys, "EdDSA", "--sub", "alice", "--no-iat", "--nbf", nbf),
                        keys.public_key("EdDSA"), algorithms=["EdDSA"])
    assert "iat" not in claims
    assert claims["nbf"] == nbf


def test_minted_token_logs_in_to_the_broker(brokers, keys, mqtt):
    b = brokers.start_auth(keys.auth_options("HS256,ES256,EdDSA"))
    for alg in ALGS:
        _, rc = mqtt.connect(b, "alice", alg.lower(),
                             mint(keys, alg, "--sub", "alice", "--dev", alg.lower()))
        assert rc == CONNACK_OK


# ----------------------------------------------------------------- verify


@pytest.mark.parametrize("alg", ALGS)
def test_verify_prints_the_claims_of_a_pyjwt_token(keys, alg):
    now = int(time.time())
    claims = {"sub": "bob", "dev": "tablet", "role": "service", "jti": "abc-123",
              "iat": now, "nbf": now - 5, "exp": now + 300}
    p = pigeon_token("verify", *verify_args(keys, alg), keys.sign(claims, alg))
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout) == dict(claims, alg=alg)


def test_verify_reads_the_token_from_stdin(keys):
    tok = keys.token("carol", alg="ES256")
    p = pigeon_token("verify", "--public-key-file", keys.public_file, "-", stdin=tok + "\n")
    assert p.returncode == 0, p.stdout + p.stderr
    out = json.loads(p.stdout)
    assert out["sub"] == "carol" and out["alg"] == "ES256" and out["role"] == "user"


def test_verify_accepts_a_key_file_holding_several_keys(keys):
    for alg in ("ES256", "EdDSA"):
        p = pigeon_token("verify", "--public-key-file", keys.public_file,
                         keys.token("dave", alg=alg))
        assert p.returncode == 0, p.stdout
        assert json.loads(p.stdout)["alg"] == alg


def _bad_tokens():
    now = int(time.time())
    return [
        # (id, make(keys) -> token, verify args(keys), stdout regex)
        ("expired", lambda k: k.token("alice", iat=now - 7200, exp=now - 3600),
         lambda k: ["--secret-file", k.secret_file], r"invalid: expired: token expired"),
        ("nbf_in_future", lambda k: k.token("alice", nbf=now + 3600),
         lambda k: ["--secret-file", k.secret_file], r"invalid: not yet valid: "),
        ("tampered", lambda k: replace_claims(k.token("alice", alg="ES256"),
                                              {"sub": "root", "exp": now + 60}),
         lambda k: ["--public-key-file", k.es256_pub_file],
         r"invalid: bad signature: signature does not verify"),
        ("other_secret", lambda k: jwt.encode({"sub": "a", "exp": now + 60}, os.urandom(40),
                                              algorithm="HS256"),
         lambda k: ["--secret-file", k.secret_file], r"invalid: bad signature: "),
        ("alg_none", lambda k: unsigned_token({"sub": "alice", "exp": now + 60}),
         lambda k: ["--secret-file", k.secret_file],
         r'invalid: algorithm refused: alg "none" is refused'),
        ("alg_not_allowed", lambda k: k.token("alice"),
         lambda k: ["--secret-file", k.secret_file, "--public-key-file", k.es256_pub_file,
                    "--algs", "ES256"],
         r"invalid: algorithm refused: alg is not among the configured jwt_algs"),
        ("no_key_for_alg", lambda k: k.token("alice", alg="EdDSA"),
         lambda k: ["--public-key-file", k.es256_pub_file], r"invalid: algorithm refused: "),
        ("missing_exp", lambda k: k.token("alice", exp=OMIT),
         lambda k: ["--secret-file", k.secret_file], r"invalid: bad claims: exp claim missing"),
        ("missing_sub", lambda k: k.token(OMIT),
         lambda k: ["--secret-file", k.secret_file], r"invalid: bad claims: sub claim missing"),
        ("garbage", lambda k: "garbage",
         lambda k: ["--secret-file", k.secret_file],
         r"invalid: malformed: not a compact JWS"),
        ("too_long", lambda k: "a" * 5000 + ".b.c",
         lambda k: ["--secret-file", k.secret_file],
         r"invalid: malformed: token longer than 4096 bytes"),
    ]


BAD_TOKENS = _bad_tokens()


@pytest.mark.parametrize("make,args,reason", [c[1:] for c in BAD_TOKENS],
                         ids=[c[0] for c in BAD_TOKENS])
def test_verify_refuses_a_bad_token_with_the_reason(keys, make, args, reason):
    p = pigeon_token("verify", *args(keys), make(keys))
    assert p.returncode == 1, p.stdout + p.stderr
    assert re.match(reason, p.stdout), p.stdout


# ------------------------------------------------------------------ usage


@pytest.mark.parametrize("args,message", [
    ([], r"usage: pigeon-token"),
    (["frobnicate"], r"usage: pigeon-token"),
    (["mint", "--sub", "alice"], r"exactly one of --secret-file and --key-file"),
    (["mint", "--secret-file", "{secret}"], r"mint needs --sub"),
    (["mint", "--secret-file", "{secret}", "--sub", "a/b"], r"--sub and --dev take"),
    (["mint", "--key-file", "{pub}", "--sub", "alice"], r"no PEM private key found"),
    (["mint", "--secret-file", "/nonexistent/secret", "--sub", "alice"], r"cannot open"),
    (["verify", "x.y.z"], r"verify needs --secret-file or --public-key-file"),
    (["verify", "--secret-file", "{secret}", "--algs", "RS256", "x.y.z"],
     r"unknown JWT algorithm 'RS256'"),
])
def test_usage_error_exits_2_with_a_message(keys, args, message):
    args = [a.format(secret=keys.secret_file, pub=keys.es256_pub_file) for a in args]
    p = pigeon_token(*args)
    assert p.returncode == 2
    assert re.search(message, p.stderr), p.stderr
