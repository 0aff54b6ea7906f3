"""WeChat / QQ mini-program login against a fake jscode2session server."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.auth.fake_wechat import FakeCode2Session

EN = {"Accept-Language": "en"}


def _wx(client: TestClient, code: str, **kw):  # type: ignore[no-untyped-def]
    return client.post("/v1/auth/wechat/login", json={"code": code}, **kw)


def test_first_login_creates_customer_and_never_leaks_session_key(
    client: TestClient, wechat: FakeCode2Session
) -> None:
    wechat.issue("code-1", "openid-A")
    first = _wx(client, "code-1")
    assert first.status_code == 200, first.text
    assert first.json()["is_new_user"] is True
    assert first.json()["user"]["role"] == "customer"
    assert "session_key" not in first.text
    assert "SK-" not in first.text
    wechat.issue("code-2", "openid-A")
    again = _wx(client, "code-2")
    assert again.json()["is_new_user"] is False
    assert again.json()["user"]["id"] == first.json()["user"]["id"]


def test_used_or_unknown_code_is_400(client: TestClient, wechat: FakeCode2Session) -> None:
    wechat.issue("once", "openid-B")
    assert _wx(client, "once").status_code == 200
    reused = _wx(client, "once", headers=EN)
    assert reused.status_code == 400
    assert reused.json()["code"] == "social_code_invalid"
    assert reused.json()["message"] == "The login code is invalid or expired; please try again."
    assert _wx(client, "never-issued").json()["message"] == "登录凭证无效或已过期，请重试。"


def test_rate_limited_and_blocked(client: TestClient, wechat: FakeCode2Session) -> None:
    wechat.issue("c", "openid-C")
    wechat.fail_next(45011)
    limited = _wx(client, "c")
    assert limited.status_code == 429
    assert limited.json()["code"] == "social_rate_limited"
    assert limited.headers["Retry-After"] == "60"
    wechat.fail_next(40226)
    blocked = _wx(client, "c", headers=EN)
    assert blocked.status_code == 403
    assert blocked.json()["message"] == "This WeChat account cannot sign in right now."


def test_busy_is_retried_once(client: TestClient, wechat: FakeCode2Session) -> None:
    wechat.issue("busy-then-ok", "openid-D")
    wechat.fail_next(-1)
    ok = _wx(client, "busy-then-ok")
    assert ok.status_code == 200
    assert wechat.calls == 2
    wechat.issue("busy-twice", "openid-D")
    wechat.fail_next(-1, -1)
    busy = _wx(client, "busy-twice")
    assert busy.status_code == 503
    assert busy.json()["code"] == "social_unavailable"
    assert wechat.calls == 4  # exactly one retry, no loop


def test_wrong_app_secret_is_an_upstream_error_not_a_user_error(
    client: TestClient, wechat: FakeCode2Session
) -> None:
    wechat.secret = "rotated-secret"
    wechat.issue("c", "openid-E")
    resp = _wx(client, "c")
    assert resp.status_code == 503
    assert "rotated-secret" not in resp.text


def test_unionid_links_wechat_and_qq(
    client: TestClient, wechat: FakeCode2Session, qq: FakeCode2Session
) -> None:
    wechat.issue("w", "wx-openid", unionid="union-1")
    qq.issue("q", "qq-openid", unionid="union-1")
    wx_user = _wx(client, "w").json()["user"]["id"]
    qq_resp = client.post("/v1/auth/qq/login", json={"code": "q"})
    assert qq_resp.status_code == 200, qq_resp.text
    assert qq_resp.json()["user"]["id"] == wx_user
    qq.issue("q2", "qq-other")
    assert client.post("/v1/auth/qq/login", json={"code": "q2"}).json()["user"]["id"] != wx_user


def test_bind_wechat_to_phone_account(client: TestClient, wechat: FakeCode2Session) -> None:
    reg = client.post(
        "/v1/auth/register", json={"phone": "13600136000", "password": "Secret-Pass9"}
    ).json()
    headers = {"Authorization": f"Bearer {reg['access_token']}"}
    wechat.issue("bind", "openid-F")
    assert (
        client.post("/v1/auth/wechat/bind", json={"code": "bind"}, headers=headers).status_code
        == 204
    )
    wechat.issue("login", "openid-F")
    assert _wx(client, "login").json()["user"]["id"] == reg["user"]["id"]

    other = client.post(
        "/v1/auth/register", json={"phone": "13600136001", "password": "Secret-Pass9"}
    ).json()
    wechat.issue("steal", "openid-F")
    stolen = client.post(
        "/v1/auth/wechat/bind",
        json={"code": "steal"},
        headers={"Authorization": f"Bearer {other['access_token']}"},
    )
    assert stolen.status_code == 409
    assert stolen.json()["code"] == "social_already_bound"


def test_empty_code_is_422(client: TestClient) -> None:
    resp = _wx(client, "")
    assert resp.status_code == 422
    assert resp.json()["details"][0]["message"] == "至少需要 1 个字符。"


def test_a_failed_login_names_the_platform_the_user_chose_in_every_language(
    client: TestClient, wechat: FakeCode2Session, qq: FakeCode2Session
) -> None:
    want = {
        "zh-CN": ("QQ登录繁忙，请稍后再试。", "微信登录繁忙，请稍后再试。"),
        "en": ("QQ login is busy; please try again later.",
               "WeChat login is busy; please try again later."),
        "ja": ("QQ ログインが混み合っています。しばらくしてから再度お試しください。",
               "WeChat ログインが混み合っています。しばらくしてから再度お試しください。"),
        "ko": ("QQ 로그인이 혼잡합니다. 잠시 후 다시 시도해 주세요.",
               "위챗 로그인이 혼잡합니다. 잠시 후 다시 시도해 주세요."),
    }  # fmt: skip
    for locale, (on_qq, on_wechat) in want.items():
        headers = {"Accept-Language": locale}
        qq.issue("q", "qq-openid")
        qq.fail_next(-1, -1)
        resp = client.post("/v1/auth/qq/login", json={"code": "q"}, headers=headers)
        assert resp.status_code == 503
        assert resp.json()["message"] == on_qq
        wechat.issue("w", "wx-openid")
        wechat.fail_next(-1, -1)
        assert _wx(client, "w", headers=headers).json()["message"] == on_wechat
    qq.issue("b", "qq-blocked")
    qq.fail_next(40226)
    blocked = client.post(
        "/v1/auth/qq/login", json={"code": "b"}, headers={"Accept-Language": "zh-CN"}
    )
    assert blocked.json()["message"] == "该QQ账号暂时无法登录。"
