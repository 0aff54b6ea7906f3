"""Message catalogs: every user-facing message exists in zh-CN, ja and ko with the same
placeholders, and Accept-Language negotiation picks the right locale."""

from __future__ import annotations

import string

import pytest

import api.app  # noqa: F401  - imports every domain, registering their errors
from api.core.errors import all_messages
from api.core.i18n import catalog, negotiate_locale, translate


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("locale", ["zh-CN", "ja", "ko"])
def test_every_message_is_translated_with_the_same_placeholders(locale: str) -> None:
    messages = catalog(locale)
    missing = sorted(m for m in all_messages() if not messages.get(m))
    assert missing == []
    for msgid in all_messages():
        assert _fields(messages[msgid]) == _fields(msgid), msgid
    # The catalogs carry no stale entries either.
    assert set(messages) <= all_messages()


def test_english_falls_back_to_the_source_text() -> None:
    assert translate("Not found.", "en") == "Not found."
    assert translate("Not found.", "zh-CN") == "未找到。"
    assert translate("Unknown msgid stays as is.", "ja") == "Unknown msgid stays as is."
    assert translate("Must be at least {ge}.", "ko", ge=3) == "3 이상이어야 합니다."


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "zh-CN"),
        ("", "zh-CN"),
        ("en-US,en;q=0.9", "en"),
        ("fr-FR, ja;q=0.5, en;q=0.4", "ja"),
        ("ko-KR", "ko"),
        ("zh-TW", "zh-CN"),
        ("en;q=0, ja", "ja"),
        ("de, fr", "zh-CN"),
        ("*", "zh-CN"),
        ("en;q=abc", "zh-CN"),
    ],
)
def test_accept_language_negotiation(header: str | None, expected: str) -> None:
    assert negotiate_locale(header) == expected
