"""Register, login, profile and the JWT rules, through real HTTP against a real server."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import jwt
import pytest

from tests.integration.conftest import PROBLEM, TEST_SECRET, ApiServer, register
from tests.integration.conftest import expect_problem as _problem
from tests.integration.conftest import problem_fields as _fields
from tests.integration.conftest import unique_email as _email


def _no_secrets(user: dict[str, Any]) -> None:
    for key in user:
        assert "password" not in key.lower() and "hash" not in key.lower(), user
    for value in user.values():
        assert not (isinstance(value, str) and value.startswith("$2")), user


def _reg(api: ApiServer, **body: Any) -> httpx.Response:
    payload = {"nombre": "Ana", "email": _email(), "password": "Secret123", **body}
    return httpx.post(f"{api.url}/api/auth/register", json=payload, timeout=30)


def _login(api: ApiServer, email: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{api.url}/api/auth/login", json={"email": email, "password": password}, timeout=30
    )


def _profile(api: ApiServer, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(f"{api.url}/api/auth/profile", headers=headers, timeout=30)


# -- register ----------------------------------------------------------------------------


def test_register_returns_201_token_and_user(api: ApiServer) -> None:
    email = _email("reg")
    r = _reg(api, nombre="Ana Buyer", email=email)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"token", "user"}
    user = body["user"]
    assert set(user) == {"id", "nombre", "email", "role", "creadoEn"}
    assert user["nombre"] == "Ana Buyer"
    assert user["email"] == email
    assert user["role"] == "COMPRADOR"
    assert isinstance(user["id"], str) and user["id"]
    assert user["creadoEn"].endswith("Z")
    _no_secrets(user)
    # the token works right away and names the same user
    profile = _profile(api, body["token"])
    assert profile.status_code == 200, profile.text
    assert profile.json()["id"] == user["id"]


def test_register_organizer_role_is_allowed(api: ApiServer) -> None:
    r = _reg(api, role="ORGANIZADOR")
    assert r.status_code == 201, r.text
    assert r.json()["user"]["role"] == "ORGANIZADOR"


def test_register_admin_self_assignment_is_403(api: ApiServer) -> None:
    email = _email("admin")
    body = _problem(_reg(api, email=email, role="ADMIN"), 403)
    assert "ADMIN" in body["detail"]
    # and nothing was created: the address is still free
    assert _reg(api, email=email).status_code == 201


def test_register_duplicate_email_is_409_case_insensitive(api: ApiServer) -> None:
    local = f"Dup-{uuid.uuid4().hex[:10]}"
    assert _reg(api, email=f"{local}@Example.com").status_code == 201
    _problem(_reg(api, email=f"{local.lower()}@example.com"), 409)
    _problem(_reg(api, email=f"{local.upper()}@EXAMPLE.COM"), 409)


def test_register_stores_email_lowercase_and_login_ignores_case(api: ApiServer) -> None:
    local = f"Case-{uuid.uuid4().hex[:10]}"
    r = _reg(api, email=f"{local}@Example.com")
    assert r.status_code == 201, r.text
    assert r.json()["user"]["email"] == f"{local.lower()}@example.com"
    assert _login(api, f"{local.upper()}@EXAMPLE.COM", "Secret123").status_code == 200


@pytest.mark.parametrize(
    "password",
    ["Short1", "onlyletters", "1234567890", "        ", "ABCDEFGH"],
    ids=["too-short", "no-digit", "no-letter", "spaces", "upper-no-digit"],
)
def test_register_weak_password_is_422(api: ApiServer, password: str) -> None:
    body = _problem(_reg(api, password=password), 422)
    assert "password" in _fields(body)


@pytest.mark.parametrize(
    "password",
    ["a1" * 36 + "b", "ñ" * 36 + "1"],
    ids=["73-ascii", "73-bytes-37-chars"],
)
def test_register_password_over_72_bytes_is_422(api: ApiServer, password: str) -> None:
    assert len(password.encode()) == 73
    body = _problem(_reg(api, password=password), 422)
    assert "password" in _fields(body)


def test_register_password_of_exactly_72_bytes_is_accepted(api: ApiServer) -> None:
    email = _email("p72")
    password = "a1" * 36
    assert _reg(api, email=email, password=password).status_code == 201
    assert _login(api, email, password).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"nombre": ""}, "nombre"),
        ({"nombre": 12}, "nombre"),
        ({"role": "SUPERUSER"}, "role"),
        ({"password": 12345678}, "password"),
    ],
)
def test_register_invalid_field_is_422_naming_it(
    api: ApiServer, body: dict[str, Any], field: str
) -> None:
    problem = _problem(_reg(api, **body), 422)
    assert field in _fields(problem), problem


def test_register_missing_field_is_422_naming_it(api: ApiServer) -> None:
    r = httpx.post(
        f"{api.url}/api/auth/register",
        json={"email": _email(), "password": "Secret123"},
        timeout=30,
    )
    problem = _problem(r, 422)
    assert "nombre" in _fields(problem), problem


def test_register_unknown_field_is_422_naming_it(api: ApiServer) -> None:
    problem = _problem(_reg(api, isAdmin=True), 422)
    assert "isAdmin" in _fields(problem), problem


# -- login -------------------------------------------------------------------------------


def test_login_returns_token_and_user_without_hash(api: ApiServer) -> None:
    email = _email("login")
    _, user = register(api, email)
    r = _login(api, email, "Secret123")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"token", "user"}
    assert body["user"]["id"] == user["id"]
    assert body["user"]["role"] == "COMPRADOR"
    _no_secrets(body["user"])
    assert _profile(api, body["token"]).json()["email"] == email


def test_login_seeded_users_have_their_roles(api: ApiServer) -> None:
    for role, token in api.tokens.items():
        r = _profile(api, token)
        assert r.status_code == 200, r.text
        assert r.json()["role"] == role


def test_login_wrong_password_and_unknown_email_give_the_same_401(api: ApiServer) -> None:
    email = _email("known")
    register(api, email)
    wrong = _problem(_login(api, email, "Wrong1234"), 401)
    unknown = _problem(_login(api, _email("nobody"), "Wrong1234"), 401)
    assert wrong["detail"] == unknown["detail"]
    assert wrong["title"] == unknown["title"]
    assert wrong.get("code") == unknown.get("code")
    assert "token" not in wrong


def test_login_with_73_byte_password_is_refused_not_500(api: ApiServer) -> None:
    email = _email("long")
    register(api, email)
    r = _login(api, email, "a1" * 36 + "b")
    assert r.status_code in (401, 422), r.text
    assert r.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize(
    ("body", "field"),
    [({"email": "x@example.com"}, "password"), ({"email": 5, "password": "Secret123"}, "email")],
)
def test_login_invalid_body_is_422(api: ApiServer, body: dict[str, Any], field: str) -> None:
    r = httpx.post(f"{api.url}/api/auth/login", json=body, timeout=30)
    problem = _problem(r, 422)
    assert field in _fields(problem), problem


# -- profile and JWT ---------------------------------------------------------------------


def test_profile_returns_the_callers_user(api: ApiServer) -> None:
    email = _email("prof")
    token, user = register(api, email, role="ORGANIZADOR")
    r = _profile(api, token)
    assert r.status_code == 200, r.text
    assert r.json() == user
    _no_secrets(r.json())


def test_profile_without_token_is_401(api: ApiServer) -> None:
    _problem(_profile(api, None), 401)


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer not.a.jwt", "Basic dXNlcjpwYXNz", "Token abc"],
)
def test_profile_with_malformed_authorization_is_401(api: ApiServer, header: str) -> None:
    r = httpx.get(f"{api.url}/api/auth/profile", headers={"Authorization": header}, timeout=30)
    _problem(r, 401)


@pytest.mark.parametrize("scheme", ["Basic", "Token", "Foo", "JWT", "Bearerx", "Bearer,"])
def test_a_valid_token_under_another_scheme_is_401(api: ApiServer, scheme: str) -> None:
    """Only ``Bearer`` authenticates: a valid token sent as ``Basic <jwt>`` is refused with
    the answer a missing token gets (Litestar's middleware took whatever followed the
    first space)."""
    token, _ = register(api, _email("scheme"))
    assert _profile(api, token).status_code == 200
    for path in ("/api/auth/profile", "/api/orders/my-orders"):
        r = httpx.get(
            f"{api.url}{path}", headers={"Authorization": f"{scheme} {token}"}, timeout=30
        )
        body = _problem(r, 401)
        missing = _problem(httpx.get(f"{api.url}{path}", timeout=30), 401)
        assert body["code"] == missing["code"] == "unauthorized", body
        assert set(body) == set(missing), (body, missing)
        assert "Bearer" in body["detail"], body


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_the_bearer_scheme_is_case_insensitive(api: ApiServer, scheme: str) -> None:
    """RFC 7235 section 2.1: the auth-scheme is a case-insensitive token."""
    token, user = register(api, _email("case"))
    r = httpx.get(
        f"{api.url}/api/auth/profile", headers={"Authorization": f"{scheme} {token}"}, timeout=30
    )
    assert r.status_code == 200, r.text
    assert r.json()["id"] == user["id"]


def _claims(user_id: str, role: str = "COMPRADOR", **over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": user_id,
        "iat": now,
        "exp": now + 3600,
        "extras": {"role": role},
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.fixture(scope="module")
def known_user(api: ApiServer) -> dict[str, Any]:
    _, user = register(api, _email("jwt"))
    return user


def test_crafted_token_with_the_right_secret_is_accepted(
    api: ApiServer, known_user: dict[str, Any]
) -> None:
    """The positive control for the forged-token tests below."""
    token = jwt.encode(_claims(known_user["id"]), TEST_SECRET, algorithm="HS256")
    r = _profile(api, token)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == known_user["id"]


def test_alg_none_token_is_401(api: ApiServer, known_user: dict[str, Any]) -> None:
    token = jwt.encode(_claims(known_user["id"], role="ADMIN"), None, algorithm="none")
    _problem(_profile(api, token), 401)
    r = httpx.get(
        f"{api.url}/api/admin/stats", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    _problem(r, 401)


def test_wrong_signature_is_401(api: ApiServer, known_user: dict[str, Any]) -> None:
    token = jwt.encode(_claims(known_user["id"]), "another-secret-0123456789abcdef!!", "HS256")
    _problem(_profile(api, token), 401)


def test_tampered_payload_is_401(api: ApiServer, known_user: dict[str, Any]) -> None:
    good = jwt.encode(_claims(known_user["id"]), TEST_SECRET, algorithm="HS256")
    evil = jwt.encode(_claims(known_user["id"], role="ADMIN"), "x" * 40, algorithm="HS256")
    header, _, signature = good.split(".")
    forged = ".".join([header, evil.split(".")[1], signature])
    _problem(_profile(api, forged), 401)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_other_hmac_algorithm_with_the_right_secret_is_401(
    api: ApiServer, known_user: dict[str, Any]
) -> None:
    token = jwt.encode(_claims(known_user["id"]), TEST_SECRET, algorithm="HS512")
    _problem(_profile(api, token), 401)


def test_expired_token_is_401(api: ApiServer, known_user: dict[str, Any]) -> None:
    now = int(time.time())
    claims = _claims(known_user["id"], iat=now - 7200, exp=now - 3600)
    token = jwt.encode(claims, TEST_SECRET, algorithm="HS256")
    _problem(_profile(api, token), 401)


def test_token_without_exp_is_401(api: ApiServer, known_user: dict[str, Any]) -> None:
    claims = _claims(known_user["id"])
    del claims["exp"]
    token = jwt.encode(claims, TEST_SECRET, algorithm="HS256")
    _problem(_profile(api, token), 401)


def test_token_without_iat_is_401(api: ApiServer, known_user: dict[str, Any]) -> None:
    claims = _claims(known_user["id"])
    del claims["iat"]
    token = jwt.encode(claims, TEST_SECRET, algorithm="HS256")
    _problem(_profile(api, token), 401)


def test_token_with_unknown_role_is_401(api: ApiServer, known_user: dict[str, Any]) -> None:
    token = jwt.encode(_claims(known_user["id"], role="ROOT"), TEST_SECRET, algorithm="HS256")
    _problem(_profile(api, token), 401)


def test_token_of_a_user_that_does_not_exist_is_401_on_profile(api: ApiServer) -> None:
    token = jwt.encode(_claims("0" * 24), TEST_SECRET, algorithm="HS256")
    _problem(_profile(api, token), 401)


def test_issued_token_carries_exp_and_iat_and_hs256(api: ApiServer) -> None:
    token, user = register(api, _email("claims"))
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, TEST_SECRET, algorithms=["HS256"])
    assert claims["sub"] == user["id"]
    assert claims["exp"] > claims["iat"]
    # JWT_EXPIRES_IN defaults to 7 days
    assert abs((claims["exp"] - claims["iat"]) - 7 * 86400) <= 5


def test_public_routes_ignore_a_bad_token(api: ApiServer) -> None:
    headers = {"Authorization": "Bearer not.a.jwt"}
    r = httpx.get(f"{api.url}/api/events", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    email = _email("pub")
    r = httpx.post(
        f"{api.url}/api/auth/register",
        json={"nombre": "P", "email": email, "password": "Secret123"},
        headers=headers,
        timeout=30,
    )
    assert r.status_code == 201, r.text


def test_tokens_of_a_deleted_user_stop_working(api: ApiServer) -> None:
    """The signature alone is not enough: a deleted user's token is refused (within the
    per-process user check interval, at once on the profile)."""
    import time as _time

    from persistence.sqlite import SQLiteStore

    token, user = register(api, f"gone-{uuid.uuid4().hex[:8]}@example.com")
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{api.url}/api/auth/profile", headers=headers).status_code == 200
    store = SQLiteStore(api.data_dir / "onsale.db")
    try:
        assert store.delete_user(user["id"])
    finally:
        store.close()
    assert httpx.get(f"{api.url}/api/auth/profile", headers=headers).status_code == 401
    deadline = _time.monotonic() + 15
    status = 0
    while _time.monotonic() < deadline:
        status = httpx.get(f"{api.url}/api/orders/my-orders", headers=headers).status_code
        if status == 401:
            break
        _time.sleep(0.5)
    assert status == 401


def test_every_401_says_how_to_authenticate(api: ApiServer) -> None:
    """RFC 9110 section 15.5.2: a 401 carries ``WWW-Authenticate``; RFC 6750 section 3:
    ``error="invalid_token"`` when the token sent was refused, none when none was sent."""
    plain = 'Bearer realm="onsale"'
    refused = 'Bearer realm="onsale", error="invalid_token"'
    token, _ = register(api, _email("challenge"))
    expired = jwt.encode(
        _claims("u" * 24, iat=int(time.time()) - 120, exp=int(time.time()) - 60),
        TEST_SECRET,
        algorithm="HS256",
    )
    forged = jwt.encode(_claims("u" * 24), "another-secret-0123456789abcdef0123", algorithm="HS256")
    cases = {
        "no token": ({}, plain),
        "another scheme": ({"Authorization": f"Basic {token}"}, plain),
        "garbage": ({"Authorization": "Bearer not-a-jwt"}, refused),
        "expired": ({"Authorization": f"Bearer {expired}"}, refused),
        "forged": ({"Authorization": f"Bearer {forged}"}, refused),
    }
    for name, (headers, challenge) in cases.items():
        for method, path in (("GET", "/api/auth/profile"), ("POST", "/api/orders")):
            r = httpx.request(method, f"{api.url}{path}", headers=headers, json={}, timeout=30)
            _problem(r, 401)
            assert r.headers.get("www-authenticate") == challenge, (name, path, r.headers)
    wrong = _login(api, _email("nobody"), "Secret123")
    _problem(wrong, 401)
    assert wrong.headers.get("www-authenticate") == plain
    ok = httpx.get(f"{api.url}/api/auth/profile", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and "www-authenticate" not in ok.headers
