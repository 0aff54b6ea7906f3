"""WeChat mini-program subscribe messages (``/cgi-bin/message/subscribe/send``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

#: errcode for "the user refused, or the one-time subscription is used up": not retried.
ERR_REFUSED = 43101
#: WeChat truncates nothing: a ``thing`` value over 20 characters is rejected.
THING_MAX = 20


class SendOutcome(StrEnum):
    """Final outcome of one send (transient failures raise ``SendFailed`` instead)."""

    SENT = "sent"
    REFUSED = "refused"


class SendFailed(Exception):
    """A transient failure (network, 5xx, busy, bad token): retry later."""


def thing(text: str) -> str:
    """A ``thing`` value cut to WeChat's 20-character limit."""
    return text if len(text) <= THING_MAX else text[: THING_MAX - 1] + "…"


@dataclass(frozen=True)
class SubscribeConfig:
    """Endpoint, token and template of the subscribe message."""

    base_url: str
    access_token: str
    template_id: str
    page: str = "pages/orders/detail"
    miniprogram_state: str = "formal"
    #: Messages to workers (offers, assignments): their template (empty: ``template_id``)
    #: and the worker app's page, opened with ``?order_id=`` (and ``&offer_id=``).
    worker_template_id: str = ""
    worker_page: str = "pages/worker/offers"

    def target(self, payload: dict[str, Any]) -> tuple[str, str]:
        """Template id and page of a message with ``payload`` (a worker's or a customer's)."""
        if payload.get("recipient") != "worker":
            return self.template_id, self.page
        query = f"order_id={int(payload['order_id'])}"
        if payload.get("offer_id") is not None:
            query += f"&offer_id={int(payload['offer_id'])}"
        return self.worker_template_id or self.template_id, f"{self.worker_page}?{query}"


class WeChatSubscribeSender:
    """Sends one subscribe message per order event to a user's openid."""

    def __init__(self, config: SubscribeConfig, http: httpx.AsyncClient) -> None:
        self._config = config
        self._http = http

    @property
    def config(self) -> SubscribeConfig:
        """Endpoint, token and templates."""
        return self._config

    async def send(
        self,
        openid: str,
        *,
        title: str,
        order_no: str,
        when: str,
        lang: str,
        target: tuple[str, str] | None = None,
    ) -> SendOutcome:
        """POST the message; REFUSED on 43101, SendFailed on anything retryable.

        ``target`` is (template id, page) when not the customer's (``SubscribeConfig.target``).
        """
        template_id, page = target or (self._config.template_id, self._config.page)
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": template_id,
            "page": page,
            "data": {
                "thing1": {"value": thing(title)},
                "character_string2": {"value": order_no[:32]},
                "time3": {"value": when},
            },
            "miniprogram_state": self._config.miniprogram_state,
            "lang": {"zh-CN": "zh_CN", "en": "en_US"}.get(lang, "zh_CN"),
        }
        url = f"{self._config.base_url.rstrip('/')}/cgi-bin/message/subscribe/send"
        try:
            resp = await self._http.post(
                url, params={"access_token": self._config.access_token}, json=body
            )
        except httpx.HTTPError as exc:
            raise SendFailed(f"network: {type(exc).__name__}") from exc
        if resp.status_code >= 500:
            raise SendFailed(f"http {resp.status_code}")
        try:
            data = resp.json()
        except ValueError as exc:
            raise SendFailed("answer is not JSON") from exc
        code = int(data.get("errcode", 0) or 0)
        if code == 0:
            return SendOutcome.SENT
        if code == ERR_REFUSED:
            return SendOutcome.REFUSED
        raise SendFailed(f"errcode {code}: {str(data.get('errmsg', ''))[:100]}")
