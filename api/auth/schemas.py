"""Request and response bodies of the auth endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from api.auth.models import Role, User
from api.auth.service import (
    PASSWORD_MAX,
    PASSWORD_MIN,
    TokenPair,
    normalize_phone,
    password_problem,
)


def check_phone(value: str) -> str:
    """Pydantic validator: a mainland mobile number, normalised to 11 digits."""
    phone = normalize_phone(value)
    if phone is None:
        raise PydanticCustomError("invalid_phone", "Enter a valid mainland China mobile number.")
    return phone


def check_strong_password(password: str, phone: str) -> None:
    """Raise the translated ``weak_password`` error when the password is too weak."""
    problem = password_problem(password, phone)
    if problem:
        raise PydanticCustomError(
            "weak_password",
            "The password is too weak: {reason}",
            {"reason": problem, "min_length": PASSWORD_MIN, "max_length": PASSWORD_MAX},
        )


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RegisterIn(_In):
    """Phone + password registration of a customer."""

    phone: str = Field(max_length=20, examples=["13800138000"])
    password: str = Field(max_length=256, examples=["s3cret-Passw0rd"])
    display_name: str | None = Field(default=None, max_length=64, examples=["王女士"])

    _phone = field_validator("phone")(check_phone)

    @model_validator(mode="after")
    def _strong_password(self) -> RegisterIn:
        check_strong_password(self.password, self.phone)
        return self


class LoginIn(_In):
    """Phone + password login."""

    phone: str = Field(max_length=20, examples=["13800138000"])
    password: str = Field(min_length=1, max_length=256, examples=["s3cret-Passw0rd"])

    _phone = field_validator("phone")(check_phone)


class SocialLoginIn(_In):
    """The code from ``wx.login`` / ``qq.login`` (valid once, a few minutes)."""

    code: str = Field(min_length=1, max_length=128, examples=["0a3bXq000abc"])


class RefreshIn(_In):
    """A refresh token to rotate or revoke."""

    refresh_token: str = Field(min_length=16, max_length=256)


class UserOut(BaseModel):
    """The signed-in user's own profile (full phone: it is theirs)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    role: Role
    enterprise_id: int | None
    phone: str | None
    display_name: str | None
    locale: str

    @classmethod
    def of(cls, user: User) -> UserOut:
        """Build from a ``User`` row."""
        return cls.model_validate(user)


class TokenOut(BaseModel):
    """Tokens of a successful login or refresh (never a WeChat session_key)."""

    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="access token lifetime, seconds")
    refresh_expires_in: int = Field(description="refresh token lifetime, seconds")
    user: UserOut
    is_new_user: bool = False

    @classmethod
    def of(cls, pair: TokenPair, user: User, *, is_new: bool = False) -> TokenOut:
        """The pair issued to ``user`` (``is_new``: the sign-in that created the account)."""
        return cls(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            expires_in=pair.expires_in,
            refresh_expires_in=pair.refresh_expires_in,
            user=UserOut.of(user),
            is_new_user=is_new,
        )


class EnterpriseIn(_In):
    """A new tenant."""

    code: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$", examples=["jiajie-shanghai"])
    name: str = Field(min_length=1, max_length=128, examples=["上海家洁家政"])


class EnterpriseOut(BaseModel):
    """A tenant."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    is_active: bool


class MemberIn(_In):
    """A worker or staff account of an enterprise."""

    role: Literal[Role.WORKER, Role.STAFF] = Field(examples=["staff"])
    phone: str = Field(max_length=20, examples=["13900139000"])
    password: str = Field(max_length=256)
    display_name: str | None = Field(default=None, max_length=64)

    _phone = field_validator("phone")(check_phone)

    @model_validator(mode="after")
    def _strong_password(self) -> MemberIn:
        check_strong_password(self.password, self.phone)
        return self
