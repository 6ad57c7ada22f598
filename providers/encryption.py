"""Provider credentials at rest: Fernet (AES-128-CBC + HMAC) keyed from CREDENTIALS_KEY."""

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


@cache
def _fernet() -> Fernet:
    digest = hashlib.sha256(settings.CREDENTIALS_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(raw: str) -> str:
    return _fernet().encrypt(raw.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError(
            "A stored provider credential cannot be decrypted: CREDENTIALS_KEY changed since it was saved. "
            "Restore the old key or enter the credential again in the admin."
        ) from exc
