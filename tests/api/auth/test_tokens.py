"""Access tokens, rotating refresh tokens with reuse detection, logout."""

from __future__ import annotations

import time

import jwt
from fastapi.testclient import TestClient

from api.core.settings import Settings


def _login(client: TestClient) -> dict:
    resp = client.post(
        "/v1/auth/register", json={"phone": "13700137000", "password": "Secret-Pass9"}
    )
    assert resp.status_code == 201
    return resp.json()


def _me(client: TestClient, token: str):
    return client.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})


def test_refresh_rotates_and_old_token_reuse_revokes_the_family(client: TestClient) -> None:
    first = _login(client)
    second = client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    second_pair = second.json()
    assert second_pair["refresh_token"] != first["refresh_token"]
    assert _me(client, second_pair["access_token"]).status_code == 200

    reuse = client.post(
        "/v1/auth/refresh",
        json={"refresh_token": first["refresh_token"]},
        headers={"Accept-Language": "en"},
    )
    assert reuse.status_code == 401
    assert reuse.json()["code"] == "refresh_token_reused"
    assert reuse.json()["message"] == "This sign-in was used elsewhere; please sign in again."
    # The thief's copy and the legitimate newer token are both dead now.
    after = client.post("/v1/auth/refresh", json={"refresh_token": second_pair["refresh_token"]})
    assert after.status_code == 401
    assert after.json()["code"] == "invalid_token"


def test_logout_revokes_refresh_token(client: TestClient) -> None:
    pair = _login(client)
    assert (
        client.post("/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}).status_code
        == 204
    )
    resp = client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert resp.status_code == 401
    assert resp.json()["message"] == "登录已过期，请重新登录。"


def test_other_logins_survive_a_logout(client: TestClient) -> None:
    pair = _login(client)
    other = client.post(
        "/v1/auth/login", json={"phone": "13700137000", "password": "Secret-Pass9"}
    ).json()
    client.post("/v1/auth/logout", json={"refresh_token": pair["refresh_token"]})
    assert (
        client.post("/v1/auth/refresh", json={"refresh_token": other["refresh_token"]}).status_code
        == 200
    )


def test_bad_expired_and_forged_access_tokens_are_401(
    client: TestClient, settings: Settings
) -> None:
    pair = _login(client)
    assert _me(client, pair["access_token"]).status_code == 200
    assert client.get("/v1/auth/me").status_code == 401
    assert _me(client, "not-a-jwt").json()["code"] == "invalid_token"
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    expired = dict(claims, exp=int(time.time()) - 10, iat=int(time.time()) - 100)
    token = jwt.encode(expired, settings.jwt_secret, algorithm="HS256")
    assert _me(client, token).status_code == 401
    forged = jwt.encode(dict(claims, role="admin"), "another-secret-" + "y" * 30, algorithm="HS256")
    assert _me(client, forged).status_code == 401
    none_alg = jwt.encode(claims, None, algorithm="none")
    assert _me(client, none_alg).status_code == 401
    # A refresh token is not an access token.
    assert _me(client, pair["refresh_token"]).status_code == 401
