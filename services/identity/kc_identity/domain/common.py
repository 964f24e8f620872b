"""Shared primitives: password and token hashing, the two realms' token prefixes."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

CUSTOMER_TOKEN_PREFIX = "kcc_"   # the two realms' tokens can never be mistaken
STAFF_TOKEN_PREFIX = "kcs_"
_hasher = PasswordHasher()  # argon2id
# Verified when the login is unknown, so both failures cost the same time.
DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def retry_seconds(delta: dt.timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))
