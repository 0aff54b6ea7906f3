"""A fake of WeChat's (and QQ's) ``GET /sns/jscode2session`` speaking the real protocol.

Success: ``{"openid", "session_key"[, "unionid"]}`` (no errcode). Errors:
``{"errcode": N, "errmsg": "..."}`` with 40029 for an invalid/used code, 45011
rate limit, 40226 blocked user, -1 system busy, 40013/40125 bad appid/secret.
A code works once, as in production.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field

import httpx

ERRMSG = {
    -1: "system error",
    40013: "invalid appid",
    40125: "invalid appsecret",
    40029: "invalid code",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
    40226: "high risk user",
}


@dataclass
class FakeCode2Session:
    """In-memory jscode2session server; register codes with ``issue``."""

    appid: str
    secret: str
    host: str
    codes: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    failures: deque[int] = field(default_factory=deque)
    calls: int = 0

    def issue(self, code: str, openid: str, unionid: str | None = None) -> str:
        """Make ``code`` valid (once) for ``openid``."""
        self.codes[code] = (openid, unionid)
        return code

    def fail_next(self, *errcodes: int) -> None:
        """Answer the next calls with these errcodes, in order."""
        self.failures.extend(errcodes)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        """Serve one request the way the real endpoint does."""
        if request.url.host != self.host:
            raise httpx.ConnectError("unknown host", request=request)
        if request.method != "GET" or request.url.path != "/sns/jscode2session":
            return httpx.Response(404, text="not found")
        self.calls += 1
        params = request.url.params
        rid = secrets.token_hex(4)
        if params.get("grant_type") != "authorization_code":
            return _err(40002, "invalid grant_type", rid)
        if params.get("appid") != self.appid:
            return _err(40013, ERRMSG[40013], rid)
        if params.get("secret") != self.secret:
            return _err(40125, ERRMSG[40125], rid)
        if self.failures:
            code = self.failures.popleft()
            return _err(code, ERRMSG.get(code, "error"), rid)
        js_code = params.get("js_code", "")
        if js_code in self.used or js_code not in self.codes:
            return _err(40029, ERRMSG[40029], rid)
        self.used.add(js_code)
        openid, unionid = self.codes[js_code]
        body: dict[str, str] = {"openid": openid, "session_key": "SK-" + secrets.token_hex(8)}
        if unionid:
            body["unionid"] = unionid
        # WeChat answers text/plain JSON; our client must not depend on the content type.
        return httpx.Response(200, json=body, headers={"Content-Type": "text/plain"})


def _err(code: int, msg: str, rid: str) -> httpx.Response:
    return httpx.Response(200, json={"errcode": code, "errmsg": f"{msg}, rid: {rid}"})
