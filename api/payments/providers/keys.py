"""Key material loaded up front: RSA keys, platform certificates and the verifier keyring.

Verification never fetches anything over the network: every key a notification may
name is configured before the first request (WeChat: platform certificates and/or the
WeChat Pay public key `PUB_KEY_ID_...`, both during a key switch; Alipay: one key).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from api.payments.providers.base import InvalidPaymentInput, UnknownCertificate

PUB_KEY_ID_PREFIX = "PUB_KEY_ID_"


def _pem_or_der(text: str | bytes, label: str) -> tuple[bytes, bool]:
    """Return (bytes, is_pem): providers hand out keys both as PEM and as bare base64 DER."""
    raw = text.encode() if isinstance(text, str) else text
    stripped = raw.strip()
    if stripped.startswith(b"-----BEGIN"):
        return stripped, True
    try:
        return base64.b64decode(b"".join(stripped.split()), validate=True), False
    except (binascii.Error, ValueError) as exc:
        raise InvalidPaymentInput(f"{label} is neither PEM nor base64 DER") from exc


def load_private_key(text: str | bytes | rsa.RSAPrivateKey) -> rsa.RSAPrivateKey:
    """Load an RSA private key from PEM (PKCS#1 or PKCS#8) or bare base64 DER."""
    if isinstance(text, rsa.RSAPrivateKey):
        return text
    data, is_pem = _pem_or_der(text, "private key")
    try:
        key = (
            serialization.load_pem_private_key(data, password=None)
            if is_pem
            else serialization.load_der_private_key(data, password=None)
        )
    except (ValueError, TypeError) as exc:
        raise InvalidPaymentInput(f"private key cannot be loaded: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InvalidPaymentInput(f"private key must be RSA, got {type(key).__name__}")
    return key


def load_public_key(text: str | bytes | rsa.RSAPublicKey) -> rsa.RSAPublicKey:
    """Load an RSA public key from PEM or bare base64 DER (SubjectPublicKeyInfo)."""
    if isinstance(text, rsa.RSAPublicKey):
        return text
    data, is_pem = _pem_or_der(text, "public key")
    try:
        key = (
            serialization.load_pem_public_key(data)
            if is_pem
            else serialization.load_der_public_key(data)
        )
    except (ValueError, TypeError) as exc:
        raise InvalidPaymentInput(f"public key cannot be loaded: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidPaymentInput(f"public key must be RSA, got {type(key).__name__}")
    return key


def rsa_sha256_sign(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    """Sign with RSA PKCS#1 v1.5 + SHA-256 (WeChat v3 and Alipay RSA2); base64 text."""
    return base64.b64encode(private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode(
        "ascii"
    )


def rsa_sha256_verify(public_key: rsa.RSAPublicKey, message: bytes, signature_b64: str) -> bool:
    """True when signature_b64 is a valid RSA PKCS#1 v1.5 + SHA-256 signature of message."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class PlatformKey:
    """One key the provider may sign with, named by the serial it sends.

    Certificates carry their validity window; `PUB_KEY_ID_...` public keys have none.
    """

    serial: str
    public_key: rsa.RSAPublicKey
    not_before: datetime | None = None
    not_after: datetime | None = None

    @classmethod
    def from_certificate(cls, pem: str | bytes | x509.Certificate) -> PlatformKey:
        """A platform certificate (PEM); its serial is the upper-case hex of the cert's."""
        if isinstance(pem, x509.Certificate):
            cert = pem
        else:
            try:
                cert = x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
            except ValueError as exc:
                raise InvalidPaymentInput(f"platform certificate cannot be loaded: {exc}") from exc
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise InvalidPaymentInput("platform certificate must hold an RSA key")
        return cls(
            serial=format(cert.serial_number, "X"),
            public_key=key,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
        )

    @classmethod
    def from_public_key(cls, key_id: str, pem: str | bytes | rsa.RSAPublicKey) -> PlatformKey:
        """A WeChat Pay public key named `PUB_KEY_ID_...` (PEM or base64 DER)."""
        if not key_id.startswith(PUB_KEY_ID_PREFIX) or len(key_id) == len(PUB_KEY_ID_PREFIX):
            raise InvalidPaymentInput(f"public key id must start with {PUB_KEY_ID_PREFIX}")
        return cls(serial=key_id, public_key=load_public_key(pem))


def _serial_key(serial: str) -> str:
    """Certificate serials are hex numbers (case and leading zeros vary); key ids are exact."""
    if serial.startswith(PUB_KEY_ID_PREFIX):
        return serial
    try:
        return format(int(serial, 16), "X")
    except ValueError:
        return serial


class PlatformKeyring:
    """The provider's verification keys by serial; both kinds coexist during a key switch."""

    def __init__(self, keys: Iterable[PlatformKey]) -> None:
        by_serial: dict[str, PlatformKey] = {}
        for key in keys:
            norm = _serial_key(key.serial)
            if norm in by_serial:
                raise InvalidPaymentInput(f"platform key serial {key.serial} configured twice")
            by_serial[norm] = key
        if not by_serial:
            raise InvalidPaymentInput("at least one platform key or certificate is required")
        self._keys: Mapping[str, PlatformKey] = MappingProxyType(by_serial)

    @classmethod
    def from_text(
        cls,
        *,
        certificates: Iterable[str] = (),
        public_key_id: str | None = None,
        public_key: str | None = None,
    ) -> PlatformKeyring:
        """Build from settings text: platform certificate PEMs and/or the PUB_KEY_ID_ key.

        During WeChat's switch from certificates to the public key, configure both.
        """
        if (public_key_id is None) != (public_key is None):
            raise InvalidPaymentInput("public_key_id and public_key must be set together")
        keys = [PlatformKey.from_certificate(pem) for pem in certificates]
        if public_key_id is not None and public_key is not None:
            keys.append(PlatformKey.from_public_key(public_key_id, public_key))
        return cls(keys)

    @property
    def serials(self) -> tuple[str, ...]:
        """The configured serials (normalised), for diagnostics."""
        return tuple(self._keys)

    def lookup(self, serial: str, *, now: datetime) -> rsa.RSAPublicKey:
        """The public key for `serial`; UnknownCertificate if unconfigured or not valid at now."""
        key = self._keys.get(_serial_key(serial.strip()))
        if key is None:
            raise UnknownCertificate(f"no platform key configured for serial {serial!r}")
        if key.not_before is not None and now < key.not_before:
            raise UnknownCertificate(f"platform certificate {serial} is not valid before {now}")
        if key.not_after is not None and now > key.not_after:
            raise UnknownCertificate(f"platform certificate {serial} expired at {key.not_after}")
        return key.public_key
