"""Message catalogs (Babel ``.po`` files, read directly so a clean clone needs no compile step).

Message ids are the English source text with ``{name}`` placeholders; a missing
or empty translation falls back to the English text, never to an error.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po

from api.core.settings import SUPPORTED_LOCALES

CATALOG_DIR = Path(__file__).parent
DEFAULT_LOCALE = SUPPORTED_LOCALES[0]
_DIRS = {"zh-CN": "zh_CN", "en": "en", "ja": "ja", "ko": "ko"}


@cache
def catalog(locale: str) -> dict[str, str]:
    """The msgid → msgstr mapping of one supported locale (read once, then cached)."""
    path = CATALOG_DIR / _DIRS[locale] / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        cat = read_po(fh, locale=_DIRS[locale])
    return {str(m.id): str(m.string) for m in cat if m.id and m.string and not m.fuzzy}


def translate(message: str, locale: str, **params: Any) -> str:
    """Translate ``message`` into ``locale`` and fill its ``{placeholders}`` from ``params``."""
    text = catalog(locale).get(message, message) if locale in _DIRS else message
    if not params:
        return text
    try:
        return text.format(**params)
    except (KeyError, IndexError, ValueError):
        # A translator's typo in a placeholder must not turn a 4xx into a 500.
        return message.format_map(_SafeDict(params))


class _SafeDict(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def negotiate_locale(accept_language: str | None, default: str = DEFAULT_LOCALE) -> str:
    """Pick the best supported locale for an ``Accept-Language`` header (RFC 9110 q-values)."""
    if not accept_language:
        return default
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")):
        piece = part.strip()
        if not piece:
            continue
        tag, _, params = piece.partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranked.append((-quality, index, tag.strip().lower().replace("_", "-")))
    for neg_q, _, tag in sorted(ranked):
        if neg_q >= 0:  # q=0 means "not acceptable"
            continue
        match = _match(tag)
        if match:
            return match
    return default


def _match(tag: str) -> str | None:
    if tag == "*":
        return None
    primary = tag.split("-")[0]
    if primary == "zh":
        # Traditional-script tags still read Simplified better than English or a default.
        return "zh-CN"
    for loc in SUPPORTED_LOCALES:
        if loc.lower() == primary:
            return loc
    return None
