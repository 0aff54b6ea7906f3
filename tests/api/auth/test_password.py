"""Phone + password registration and login: validation, translation, lockout."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update

from api.auth.models import User
from api.auth.service import normalize_phone, password_problem
from api.core.db import utcnow

EN = {"Accept-Language": "en"}


def register(
    client: TestClient, phone: str = "13800138000", password: str = "Secret-Pass9", **kw: Any
):
    return client.post("/v1/auth/register", json={"phone": phone, "password": password}, **kw)


def test_register_signs_in_and_me_works(client: TestClient) -> None:
    resp = register(client, phone="+86 138-0013-8000")
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["user"]["phone"] == "13800138000"
    assert body["user"]["role"] == "customer"
    assert body["is_new_user"] is True
    assert body["token_type"] == "bearer"
    me = client.get("/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["id"] == body["user"]["id"]


def test_duplicate_phone_is_409_translated(client: TestClient) -> None:
    assert register(client).status_code == 201
    again = register(client, phone="8613800138000")
    assert again.status_code == 409
    assert again.json()["code"] == "phone_taken"
    assert again.json()["message"] == "该手机号已注册。"
    assert register(client, headers=EN).json()["message"] == (
        "This phone number is already registered."
    )


def test_bad_phone_is_422_translated(client: TestClient) -> None:
    for phone in ["12345", "23800138000", "1380013800a", "138001380001", ""]:
        zh = register(client, phone=phone)
        assert zh.status_code == 422, phone
        detail = next(d for d in zh.json()["details"] if d["loc"] == ["body", "phone"])
        assert detail["type"] == "invalid_phone"
        assert detail["message"] == "请输入有效的中国大陆手机号。"
        en = register(client, phone=phone, headers=EN)
        detail = next(d for d in en.json()["details"] if d["loc"] == ["body", "phone"])
        assert detail["message"] == "Enter a valid mainland China mobile number."


WEAK = [
    ("ab1", "至少 8 个字符", "at least 8 characters"),
    ("abcdefghij", "需同时包含字母和数字", "use both letters and digits"),
    ("x13800138000", "不能包含手机号", "must not contain the phone number"),
    ("aaaa1111", "过于简单", "too simple"),
]


def test_weak_password_is_422_with_reason(client: TestClient) -> None:
    for password, zh_reason, en_reason in WEAK:
        zh = register(client, password=password)
        assert zh.status_code == 422, password
        detail = zh.json()["details"][0]
        assert detail["type"] == "weak_password"
        assert detail["message"] == f"密码强度不够：{zh_reason}"
        en = register(client, password=password, headers=EN)
        assert en.json()["details"][0]["message"] == f"The password is too weak: {en_reason}"
    # Nothing was stored: the phone is still free.
    assert register(client).status_code == 201


def test_login_wrong_password_and_unknown_phone_look_the_same(client: TestClient) -> None:
    register(client)
    wrong = client.post("/v1/auth/login", json={"phone": "13800138000", "password": "nope"})
    unknown = client.post("/v1/auth/login", json={"phone": "13900000000", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["message"] == "手机号或密码错误。"
    ok = client.post("/v1/auth/login", json={"phone": "13800138000", "password": "Secret-Pass9"})
    assert ok.status_code == 200
    assert ok.json()["is_new_user"] is False


def test_lockout_after_repeated_failures_then_unlock(client: TestClient, run_db: Any) -> None:
    register(client)
    creds = {"phone": "13800138000", "password": "bad-guess-1"}
    codes = [client.post("/v1/auth/login", json=creds).status_code for _ in range(3)]
    assert codes == [401, 401, 423]  # the test settings lock after 3 failures
    locked = client.post(
        "/v1/auth/login", json={"phone": "13800138000", "password": "Secret-Pass9"}, headers=EN
    )
    assert locked.status_code == 423
    assert locked.json()["code"] == "account_locked"
    assert locked.json()["message"] == "Too many failed attempts; try again in 10 minutes."
    zh = client.post("/v1/auth/login", json={"phone": "13800138000", "password": "x"})
    assert zh.json()["message"] == "失败次数过多，请 10 分钟后再试。"

    async def expire(session):  # type: ignore[no-untyped-def]
        await session.execute(update(User).values(locked_until=utcnow() - timedelta(seconds=1)))

    run_db(expire)
    ok = client.post("/v1/auth/login", json={"phone": "13800138000", "password": "Secret-Pass9"})
    assert ok.status_code == 200


def test_phone_and_password_rules_directly() -> None:
    assert normalize_phone("+8613800138000") == "13800138000"
    assert normalize_phone("0086 13800138000") == "13800138000"
    assert normalize_phone("11800138000") is None
    assert password_problem("Secret-Pass9") is None
    assert password_problem("x" * 129 + "1") == "at most {max_length} characters"
