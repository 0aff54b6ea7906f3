"""Authentication logic: passwords, lockout, JWT access + rotating refresh tokens, social login.

No FastAPI here: routers call these functions with a session and plain values.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio.to_thread
import httpx
import jwt
import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import TENANT_ROLES, RefreshToken, Role, SocialIdentity, SocialProvider, User
from api.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    Locked,
    NotFound,
    RateLimited,
    Unauthorized,
    UpstreamUnavailable,
    register_texts,
)
from api.tenants.models import Enterprise

log = structlog.get_logger("api.auth")

# Mainland China mobile numbers: 11 digits, 1[3-9]x; an optional +86 / 86 prefix is stripped.
_PHONE_RE = re.compile(r"^1[3-9]\d{9}$")
PASSWORD_MIN = 8
PASSWORD_MAX = 128


class InvalidCredentials(Unauthorized):
    """Wrong phone or password (one message for both, so phones cannot be enumerated)."""

    code = "invalid_credentials"
    message = "Wrong phone number or password."


class AccountLocked(Locked):
    """Too many failed logins: locked for a while."""

    code = "account_locked"
    message = "Too many failed attempts; try again in {minutes} minutes."


class AccountDisabled(Forbidden):
    """The account was disabled by an administrator."""

    code = "account_disabled"
    message = "This account is disabled."


class PhoneTaken(Conflict):
    """Registration with a phone that already has an account."""

    code = "phone_taken"
    message = "This phone number is already registered."


class InvalidToken(Unauthorized):
    """An access or refresh token that is malformed, expired or revoked."""

    code = "invalid_token"
    message = "Your session has expired; please sign in again."


class RefreshReused(Unauthorized):
    """A refresh token was used twice: the whole family is revoked."""

    code = "refresh_token_reused"
    message = "This sign-in was used elsewhere; please sign in again."


class SocialCodeInvalid(InvalidInput):
    """WeChat/QQ rejected the login code (40029: invalid, used or expired)."""

    code = "social_code_invalid"
    message = "The login code is invalid or expired; please try again."


class SocialRateLimited(RateLimited):
    """WeChat/QQ rate-limited us (45011)."""

    code = "social_rate_limited"
    message = "Too many login attempts; please try again in a minute."


class SocialUserBlocked(Forbidden):
    """The platform flagged the user as high risk (40226); ``provider`` names it."""

    code = "social_user_blocked"
    message = "This {provider} account cannot sign in right now."


class SocialUnavailable(UpstreamUnavailable):
    """WeChat/QQ busy (-1 twice), unreachable or answered nonsense; ``provider`` names it."""

    code = "social_unavailable"
    message = "{provider} login is busy; please try again later."


#: The name a user knows each login platform by (a msgid: the catalogs translate it).
PROVIDER_NAMES = {SocialProvider.WECHAT: "WeChat", SocialProvider.QQ: "QQ"}
register_texts(*PROVIDER_NAMES.values())


class SocialAlreadyBound(Conflict):
    """The openid already belongs to another account."""

    code = "social_already_bound"
    message = "This account is already linked to another user."


class EnterpriseNotFound(NotFound):
    """An enterprise id that does not exist."""

    code = "enterprise_not_found"
    message = "Enterprise not found."


class EnterpriseCodeTaken(Conflict):
    """An enterprise code that is already used."""

    code = "enterprise_code_taken"
    message = "This enterprise code is already used."


# ---------------------------------------------------------------- phone and password rules


def normalize_phone(raw: str) -> str | None:
    """The 11-digit mainland mobile number in ``raw`` or ``None`` if it is not one."""
    phone = re.sub(r"[\s-]", "", raw)
    for prefix in ("+86", "0086", "86"):
        if phone.startswith(prefix) and len(phone) == 11 + len(prefix):
            phone = phone[len(prefix) :]
            break
    return phone if _PHONE_RE.match(phone) else None


def password_problem(password: str, phone: str | None = None) -> str | None:
    """Why ``password`` is too weak (an msgid), or ``None`` when it is acceptable."""
    if len(password) < PASSWORD_MIN:
        return "at least {min_length} characters"
    if len(password) > PASSWORD_MAX:
        return "at most {max_length} characters"
    if not (re.search(r"[A-Za-z]", password) and re.search(r"\d", password)):
        return "use both letters and digits"
    if phone and phone in password:
        return "must not contain the phone number"
    if len(set(password)) < 4 or password.lower() in _COMMON:
        return "too simple"
    return None


_COMMON = frozenset({"password1", "abc12345", "qwerty123", "a1234567", "12345678a", "passw0rd"})


def make_password_hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    """Argon2id hasher with the configured cost."""
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)


async def hash_password(hasher: PasswordHasher, password: str) -> str:
    """Argon2id hash, computed off the event loop (it is CPU- and memory-heavy on purpose)."""
    return await anyio.to_thread.run_sync(hasher.hash, password)


async def verify_password(hasher: PasswordHasher, password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (off the event loop)."""

    def _verify() -> bool:
        try:
            return hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await anyio.to_thread.run_sync(_verify)


# A hash to verify against when the phone is unknown, so timing does not reveal it.
_DUMMY_HASH_CACHE: dict[int, str] = {}


# ---------------------------------------------------------------- tokens


@dataclass(frozen=True)
class TokenConfig:
    """Signing secret, algorithm and lifetimes (seconds) of our tokens."""

    secret: str
    algorithm: str = "HS256"
    access_ttl_s: int = 900
    refresh_ttl_s: int = 30 * 24 * 3600
    issuer: str = "daojia"


@dataclass(frozen=True)
class TokenPair:
    """What a successful login returns."""

    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int


def _hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def encode_access_token(config: TokenConfig, user: User, now: datetime) -> str:
    """A signed JWT naming the user, role and enterprise; valid ``access_ttl_s`` seconds."""
    claims: dict[str, Any] = {
        "sub": str(user.id),
        "role": user.role,
        "ent": user.enterprise_id,
        "iss": config.issuer,
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + config.access_ttl_s,
        "jti": uuid.uuid4().hex,
        "typ": "access",
    }
    return jwt.encode(claims, config.secret, algorithm=config.algorithm)


def decode_access_token(config: TokenConfig, token: str) -> dict[str, Any]:
    """The verified claims of an access token; ``InvalidToken`` otherwise.

    A client sends the same access token with every request until it expires, so the
    signature check is remembered per (token, key); expiry is checked on every call.
    """
    claims = dict(_verified(token, config.secret, config.algorithm, config.issuer))
    if claims["exp"] <= time.time():
        raise InvalidToken()
    return claims


@functools.lru_cache(maxsize=16384)
def _verified(token: str, secret: str, algorithm: str, issuer: str) -> tuple[tuple[str, Any], ...]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[algorithm],
            issuer=issuer,
            options={"require": ["exp", "sub", "iat"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken() from exc
    if claims.get("typ") != "access":
        raise InvalidToken()
    return tuple(claims.items())


async def user_from_access_token(session: AsyncSession, config: TokenConfig, token: str) -> User:
    """The active user an access token names."""
    claims = decode_access_token(config, token)
    try:
        user_id = int(claims["sub"])
    except (TypeError, ValueError) as exc:
        raise InvalidToken() from exc
    user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise InvalidToken()
    return user


async def issue_tokens(
    session: AsyncSession,
    config: TokenConfig,
    user: User,
    now: datetime,
    family_id: str | None = None,
) -> TokenPair:
    """A new access token and a refresh token (a new family unless ``family_id`` continues one)."""
    raw = secrets.token_urlsafe(32)
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id or uuid.uuid4().hex,
            token_hash=_hash_token(raw),
            created_at=now,
            expires_at=now + timedelta(seconds=config.refresh_ttl_s),
        )
    )
    await session.flush()
    return TokenPair(
        access_token=encode_access_token(config, user, now),
        refresh_token=raw,
        expires_in=config.access_ttl_s,
        refresh_expires_in=config.refresh_ttl_s,
    )


async def _revoke_family(session: AsyncSession, family_id: str, now: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def rotate_refresh_token(
    session: AsyncSession, config: TokenConfig, raw: str, now: datetime
) -> tuple[User, TokenPair]:
    """Exchange a refresh token for a new pair; a second use revokes the whole family."""
    row = (
        await session.execute(
            select(RefreshToken)
            .where(RefreshToken.token_hash == _hash_token(raw))
            .with_for_update()
        )
    ).scalar_one_or_none()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise InvalidToken()
    if row.used_at is not None:
        # Someone holds a copy of an already-rotated token: assume theft, end every session of it.
        await _revoke_family(session, row.family_id, now)
        await session.commit()
        log.warning("refresh_token_reuse", user_id=row.user_id, family_id=row.family_id)
        raise RefreshReused()
    user = await session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise InvalidToken()
    # Conditional update: of two concurrent refreshes with the same token, only one wins.
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    )
    if getattr(result, "rowcount", 1) != 1:
        await _revoke_family(session, row.family_id, now)
        await session.commit()
        raise RefreshReused()
    pair = await issue_tokens(session, config, user, now, family_id=row.family_id)
    await session.commit()
    return user, pair


async def logout(session: AsyncSession, raw_refresh: str, now: datetime) -> None:
    """Revoke the refresh-token family of ``raw_refresh`` (unknown tokens are ignored)."""
    row = (
        await session.execute(
            select(RefreshToken).where(RefreshToken.token_hash == _hash_token(raw_refresh))
        )
    ).scalar_one_or_none()
    if row is not None:
        await _revoke_family(session, row.family_id, now)
        await session.commit()


# ---------------------------------------------------------------- phone + password


async def register_customer(
    session: AsyncSession,
    hasher: PasswordHasher,
    *,
    phone: str,
    password: str,
    display_name: str | None,
    locale: str,
) -> User:
    """Create a customer account; ``PhoneTaken`` if the phone already has one."""
    existing = await session.scalar(select(User.id).where(User.phone == phone))
    if existing is not None:
        raise PhoneTaken()
    user = User(
        phone=phone,
        password_hash=await hash_password(hasher, password),
        display_name=display_name,
        role=Role.CUSTOMER.value,
        locale=locale,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent registration won the race
        await session.rollback()
        raise PhoneTaken() from exc
    return user


async def login_with_password(
    session: AsyncSession,
    hasher: PasswordHasher,
    *,
    phone: str,
    password: str,
    now: datetime,
    max_failures: int,
    lockout_s: int,
) -> User:
    """The user whose phone and password match; counts failures and locks the account."""
    user = (
        await session.execute(select(User).where(User.phone == phone).with_for_update())
    ).scalar_one_or_none()
    if user is None or user.password_hash is None:
        # Same work and answer as a wrong password, so the phone's existence stays private.
        dummy = _DUMMY_HASH_CACHE.get(id(hasher))
        if dummy is None:
            dummy = _DUMMY_HASH_CACHE[id(hasher)] = await hash_password(hasher, "dummy-password-1")
        await verify_password(hasher, dummy, password)
        raise InvalidCredentials()
    if user.locked_until is not None and user.locked_until > now:
        raise AccountLocked(minutes=_minutes_left(user.locked_until, now))
    if not await verify_password(hasher, user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= max_failures:
            user.locked_until = now + timedelta(seconds=lockout_s)
            user.failed_logins = 0
            await session.commit()
            raise AccountLocked(minutes=_minutes_left(user.locked_until, now))
        await session.commit()
        raise InvalidCredentials()
    if not user.is_active:
        raise AccountDisabled()
    user.failed_logins = 0
    user.locked_until = None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = await hash_password(hasher, password)
    return user


def _minutes_left(until: datetime, now: datetime) -> int:
    return max(1, -(-int((until - now).total_seconds()) // 60))


# ---------------------------------------------------------------- WeChat / QQ mini-program


@dataclass(frozen=True)
class SocialApp:
    """One mini-program's credentials and the base URL of its ``jscode2session`` API."""

    provider: SocialProvider
    appid: str
    secret: str
    base_url: str
    timeout_s: float = 5.0


@dataclass(frozen=True)
class SocialSession:
    """What ``code2session`` gives us that we keep (session_key is deliberately dropped)."""

    openid: str
    unionid: str | None


_BUSY = -1
_INVALID_CODE = 40029
_RATE_LIMITED = 45011
_BLOCKED = 40226


async def code2session(client: httpx.AsyncClient, app: SocialApp, code: str) -> SocialSession:
    """Exchange a ``wx.login``/``qq.login`` code for the user's openid (one retry when busy)."""
    params = {
        "appid": app.appid,
        "secret": app.secret,
        "js_code": code,
        "grant_type": "authorization_code",
    }
    url = app.base_url.rstrip("/") + "/sns/jscode2session"
    name = PROVIDER_NAMES[app.provider]
    for attempt in (1, 2):
        try:
            resp = await client.get(url, params=params, timeout=app.timeout_s)
            payload = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("code2session_failed", provider=app.provider, error=type(exc).__name__)
            raise SocialUnavailable(provider=name) from exc
        if not isinstance(payload, dict):
            raise SocialUnavailable(provider=name)
        errcode = int(payload.get("errcode") or 0)
        if errcode == 0 and resp.status_code == 200 and payload.get("openid"):
            unionid = payload.get("unionid") or None
            return SocialSession(openid=str(payload["openid"]), unionid=unionid)
        log.info("code2session_error", provider=app.provider, errcode=errcode, attempt=attempt)
        if errcode == _BUSY and attempt == 1:
            continue
        if errcode == _INVALID_CODE:
            raise SocialCodeInvalid()
        if errcode == _RATE_LIMITED:
            raise SocialRateLimited(headers={"Retry-After": "60"})
        if errcode == _BLOCKED:
            raise SocialUserBlocked(provider=name)
        raise SocialUnavailable(provider=name)
    raise SocialUnavailable(provider=name)  # pragma: no cover - the loop returns or raises


async def _identity_of(
    session: AsyncSession, app: SocialApp, social: SocialSession
) -> SocialIdentity | None:
    """The identity already bound to this app's openid, if any."""
    return await session.scalar(
        select(SocialIdentity).where(
            SocialIdentity.provider == app.provider.value,
            SocialIdentity.appid == app.appid,
            SocialIdentity.openid == social.openid,
        )
    )


def _identity_for(user: User, app: SocialApp, social: SocialSession) -> SocialIdentity:
    """A new binding of this app's openid (and unionid) to ``user``."""
    return SocialIdentity(
        user_id=user.id,
        provider=app.provider.value,
        appid=app.appid,
        openid=social.openid,
        unionid=social.unionid,
    )


async def login_with_social(
    session: AsyncSession, app: SocialApp, social: SocialSession, *, locale: str
) -> tuple[User, bool]:
    """The user bound to this openid (or unionid), creating a customer on first login."""
    identity = await _identity_of(session, app, social)
    if identity is not None:
        if social.unionid and identity.unionid != social.unionid:
            identity.unionid = social.unionid
        user = await session.get(User, identity.user_id)
        if user is None or not user.is_active:
            raise AccountDisabled()
        return user, False
    user = None
    if social.unionid:
        # Same person through another app of the same Open Platform account.
        other = await session.scalar(
            select(SocialIdentity).where(SocialIdentity.unionid == social.unionid).limit(1)
        )
        if other is not None:
            user = await session.get(User, other.user_id)
    created = user is None
    if user is None:
        user = User(role=Role.CUSTOMER.value, locale=locale)
        session.add(user)
        await session.flush()
    if not user.is_active:
        raise AccountDisabled()
    session.add(_identity_for(user, app, social))
    try:
        await session.flush()
    except IntegrityError as exc:  # the same code raced itself: the other request bound it
        await session.rollback()
        raise SocialAlreadyBound() from exc
    return user, created


async def bind_social(
    session: AsyncSession, user: User, app: SocialApp, social: SocialSession
) -> None:
    """Link an openid to ``user``; ``SocialAlreadyBound`` when another user has it."""
    identity = await _identity_of(session, app, social)
    if identity is not None:
        if identity.user_id != user.id:
            raise SocialAlreadyBound()
        return
    session.add(_identity_for(user, app, social))
    await session.commit()


# ---------------------------------------------------------------- enterprises and members


async def create_enterprise(session: AsyncSession, *, code: str, name: str) -> Enterprise:
    """A new tenant."""
    if await session.scalar(select(Enterprise.id).where(Enterprise.code == code)) is not None:
        raise EnterpriseCodeTaken()
    enterprise = Enterprise(code=code, name=name)
    session.add(enterprise)
    await session.commit()
    return enterprise


async def create_member(
    session: AsyncSession,
    hasher: PasswordHasher,
    actor: User,
    *,
    enterprise_id: int,
    role: Role,
    phone: str,
    password: str,
    display_name: str | None,
) -> User:
    """A worker or staff account of one enterprise; staff may add only to their own."""
    if role not in TENANT_ROLES:
        raise InvalidInput()
    if Role(actor.role) is not Role.ADMIN and actor.enterprise_id != enterprise_id:
        raise Forbidden()
    if await session.get(Enterprise, enterprise_id) is None:
        raise EnterpriseNotFound()
    if await session.scalar(select(User.id).where(User.phone == phone)) is not None:
        raise PhoneTaken()
    user = User(
        phone=phone,
        password_hash=await hash_password(hasher, password),
        display_name=display_name,
        role=role.value,
        enterprise_id=enterprise_id,
    )
    session.add(user)
    await session.commit()
    return user
