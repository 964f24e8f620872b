"""Two-factor login: TOTP (RFC 6238, ``pyotp``) and one-time recovery codes."""
import hashlib
import secrets
import time

import pyotp

ISSUER = "KundenCenter"
STEP = 30
RECOVERY_CODES = 10


def new_secret():
    return pyotp.random_base32()


def provisioning_uri(secret, account):
    return pyotp.TOTP(secret, interval=STEP).provisioning_uri(name=account, issuer_name=ISSUER)


def _normalise(code):
    return "".join((code or "").split()).replace("-", "").lower()


def match_totp(secret, code, last_step=None, now=None):
    """The time step of ``code`` (current step ±1 for clock drift) or None; a step at or
    before ``last_step`` is refused, so a code works once."""
    code = _normalise(code)
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret, interval=STEP)
    current = int((now if now is not None else time.time()) // STEP)
    for step in (current - 1, current, current + 1):
        if last_step is not None and step <= last_step:
            continue
        if secrets.compare_digest(totp.at(step * STEP), code):
            return step
    return None


def new_recovery_codes(count=RECOVERY_CODES):
    """Plain codes (shown once) like ``7f3k2-9q8wd``."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(alphabet) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    return codes


def hash_recovery_code(code):
    return hashlib.sha256(_normalise(code).encode()).hexdigest()
