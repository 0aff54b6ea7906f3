"""One pydantic-settings ``Settings`` read from ``DAOJIA_*`` environment variables."""

from __future__ import annotations

import secrets
from enum import StrEnum
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Locales with a message catalog; the first is the default.
SUPPORTED_LOCALES: tuple[str, ...] = ("zh-CN", "en", "ja", "ko")


class Environment(StrEnum):
    """Where the process runs; production refuses unsafe defaults."""

    DEV = "dev"
    TEST = "test"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Every knob of the API process; the environment overrides with a ``DAOJIA_`` prefix."""

    model_config = SettingsConfigDict(env_prefix="DAOJIA_", extra="ignore")

    environment: Environment = Environment.DEV
    var_dir: Path = Path("var")
    # Empty means the embedded default: a SQLite file under var_dir (see effective_database_url).
    database_url: str = ""
    redis_url: str | None = None
    sql_echo: bool = False

    jwt_secret: str = ""
    jwt_algorithm: str = "HS256"
    access_token_ttl_s: int = Field(default=15 * 60, gt=0)
    refresh_token_ttl_s: int = Field(default=30 * 24 * 3600, gt=0)

    # Argon2id cost; tests lower it so a suite with many logins stays fast.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=64 * 1024, ge=8)
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_s: int = Field(default=15 * 60, ge=1)

    wechat_appid: str = "wx-dev-appid"
    wechat_secret: str = "wx-dev-secret"
    wechat_base_url: str = "https://api.weixin.qq.com"
    qq_appid: str = "qq-dev-appid"
    qq_secret: str = "qq-dev-secret"
    qq_base_url: str = "https://api.q.qq.com"
    upstream_timeout_s: float = Field(default=5.0, gt=0)

    # H3 resolution of the service-area lookup cover: the API asks about one point at a time,
    # so a coarse cover (cheap to rebuild when areas change) loses nothing.
    area_cover_res: int = Field(default=7, ge=0, le=15)
    default_locale: str = "zh-CN"
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    log_json: bool = True
    log_level: str = "INFO"
    cors_origins: list[str] = Field(default_factory=list)

    # Booking (orders/): local time zone of shifts and slots, slot grid, rules.
    service_timezone: str = "Asia/Shanghai"
    slot_granularity_s: int = Field(default=1800, gt=0)
    slot_lead_time_s: int = Field(default=2 * 3600, ge=0)
    booking_horizon_days: int = Field(default=14, ge=1)
    booking_max_distance_km: float = Field(default=20.0, gt=0)
    unpaid_expiry_min: int = Field(default=15, ge=1)
    cancel_free_before_min: int = Field(default=120, ge=0)
    cancel_fee_pct: int = Field(default=20, ge=0, le=100)
    evening_surcharge_pct: int = Field(default=20, ge=0, le=100)
    weekend_surcharge_pct: int = Field(default=10, ge=0, le=100)
    evening_start_hour: int = Field(default=18, ge=0, le=24)
    share_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)
    #: Seconds between runs of the embedded relay/expiry loop (0 disables it).
    relay_interval_s: float = Field(default=2.0, ge=0)
    #: Seconds between freezes of the collector's survivors (api/core/heap.py; 0 disables;
    #: never under tests). Keeps full collections short with thousands of live sockets;
    #: each tick's pause grows with the interval (~10 ms per 0.25 s at 1,000 pings/s).
    gc_freeze_interval_s: float = Field(default=0.25, ge=0)
    #: Local hour (Asia/Shanghai) of the daily full collection of the frozen heap.
    gc_full_collect_hour: int = Field(default=4, ge=0, le=23)

    # Payments: the provider used for new payments; the sandbox is the demo default.
    payment_provider: str = "sandbox"
    public_base_url: str = "http://127.0.0.1:8000"
    sandbox_pay_page_url: str = ""
    wechatpay_mchid: str = ""
    wechatpay_merchant_serial_no: str = ""
    wechatpay_merchant_private_key: str = ""
    wechatpay_apiv3_key: str = ""
    wechatpay_notify_url: str = ""
    wechatpay_platform_certificates: list[str] = Field(default_factory=list)
    wechatpay_public_key_id: str = ""
    wechatpay_public_key: str = ""
    wechatpay_base_url: str = "https://api.mch.weixin.qq.com"
    alipay_app_id: str = ""
    alipay_seller_id: str = ""
    alipay_app_private_key: str = ""
    alipay_public_key: str = ""
    alipay_notify_url: str = ""
    alipay_gateway_url: str = "https://openapi.alipay.com/gateway.do"

    # Notifications: WeChat subscribe messages (empty template id = channel off).
    wechat_subscribe_template_id: str = ""
    wechat_access_token: str = ""

    # Live dispatch and tracking (api/dispatcher, api/workers, api/tracking).
    #: Key prefix of this app's Redis keys and channels (tests use unique ones).
    redis_prefix: str = "dj:"
    #: Seconds between ticks of the embedded dispatcher (0 disables it; off in tests).
    dispatch_tick_s: float = Field(default=2.0, ge=0)
    #: Orders whose slot starts within this many seconds are dispatched live.
    dispatch_horizon_s: int = Field(default=2 * 3600, ge=0)
    dispatch_batch_max: int = Field(default=200, ge=1)
    dispatch_max_travel_s: float = Field(default=3600.0, gt=0)
    #: Time budget of one match (s; 0: none), below the batch window: past it the best
    #: assignment found so far goes out, with its proven gap bound logged.
    dispatch_match_budget_s: float = Field(default=1.0, ge=0)
    offer_timeout_s: int = Field(default=30, ge=1)
    #: A job may start this long after its booked window's latest start; past that the
    #: dispatcher hands it to staff (dispatch.rounds.escalate_late).
    dispatch_max_lateness_s: int = Field(default=3600, ge=0)
    #: Member-priority units an order gains per hour it waits (older orders win ties).
    dispatch_aging_per_hour: float = Field(default=1.0, ge=0)
    #: Fairness: earnings of the last N days count towards a worker's recent earnings.
    fairness_earnings_days: int = Field(default=7, ge=1)
    #: Seconds an order stays in the grab pool before auto-assign (0: straight to auto).
    grab_window_s: int = Field(default=0, ge=0)
    ping_max_age_s: float = Field(default=300.0, gt=0)
    ping_max_future_s: float = Field(default=30.0, ge=0)
    #: A worker's last position older than this is shown as stale, and does not count for
    #: arrival (s). Whether a fix can follow the track is ``geo.plausibility``'s, by mode.
    position_stale_s: float = Field(default=120.0, gt=0)
    arrive_radius_m: float = Field(default=200.0, gt=0)
    service_code_max_failures: int = Field(default=5, ge=1)
    service_code_lockout_s: int = Field(default=15 * 60, ge=1)
    completion_photo_max_bytes: int = Field(default=512 * 1024, gt=0)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.default_locale not in SUPPORTED_LOCALES:
            raise ValueError(
                f"default_locale must be one of {SUPPORTED_LOCALES}, got {self.default_locale!r}"
            )
        if self.environment is Environment.PRODUCTION and not self.jwt_secret:
            raise ValueError("DAOJIA_JWT_SECRET must be set in production")
        if self.environment is Environment.PRODUCTION and len(self.jwt_secret) < 32:
            raise ValueError("DAOJIA_JWT_SECRET must be at least 32 characters in production")
        if self.payment_provider not in ("sandbox", "wechatpay", "alipay"):
            raise ValueError(
                "payment_provider must be sandbox, wechatpay or alipay, "
                f"got {self.payment_provider!r}"
            )
        return self

    def check_payment_config(self) -> None:
        """In production, refuse to start when the chosen provider's keys are missing."""
        if self.environment is not Environment.PRODUCTION:
            return
        missing = self.missing_payment_keys()
        if missing:
            raise RuntimeError(
                f"payment provider {self.payment_provider} needs DAOJIA_"
                + ", DAOJIA_".join(m.upper() for m in missing)
            )

    def missing_payment_keys(self) -> list[str]:
        if self.payment_provider == "sandbox":
            return ["payment_provider (the sandbox is not for production)"]
        if self.payment_provider == "wechatpay":
            names = [
                "wechatpay_mchid",
                "wechatpay_merchant_serial_no",
                "wechatpay_merchant_private_key",
                "wechatpay_apiv3_key",
                "wechatpay_notify_url",
            ]
            missing = [n for n in names if not getattr(self, n)]
            if not self.wechatpay_platform_certificates and not (
                self.wechatpay_public_key_id and self.wechatpay_public_key
            ):
                missing.append("wechatpay_public_key")
            return missing
        names = [
            "alipay_app_id",
            "alipay_seller_id",
            "alipay_app_private_key",
            "alipay_public_key",
            "alipay_notify_url",
        ]
        return [n for n in names if not getattr(self, n)]

    @property
    def effective_database_url(self) -> str:
        """The SQLAlchemy async URL; the embedded default is ``sqlite+aiosqlite`` under var_dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.var_dir / 'daojia.sqlite3').resolve()}"

    def effective_jwt_secret(self) -> str:
        """The signing secret; in dev/test a random one is generated once and kept in var_dir."""
        if self.jwt_secret:
            return self.jwt_secret
        if self.environment is Environment.PRODUCTION:  # pragma: no cover - validator forbids
            raise RuntimeError("DAOJIA_JWT_SECRET must be set in production")
        path = self.var_dir / "jwt_secret"
        # Persisted so tokens survive a dev restart; never used in production.
        if path.exists():
            secret = path.read_text().strip()
            if secret:
                return secret
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(48)
        path.write_text(secret)
        path.chmod(0o600)
        return secret
