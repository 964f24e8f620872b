"""The browser's session: an encrypted, authenticated cookie (Fernet = AES-CBC + HMAC-SHA256).

The cookie holds the API token; the browser only ever sees ciphertext, in an
HttpOnly, SameSite=Lax cookie (Secure over HTTPS), so no JavaScript can read
the token. Nothing is stored on the server, so any number of web processes can
serve a customer. Logout ends the API session itself (the token is then worthless
even if a copy of the cookie survived).
"""
import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature

COOKIE_NAME = "kc_session"


def fernet_for(secret_key):
    digest = hashlib.sha256(b"kc_web session v1\x00" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class _FernetSerializer:
    def __init__(self, fernet, max_age):
        self.fernet, self.max_age = fernet, max_age

    def dumps(self, obj):
        return self.fernet.encrypt(json.dumps(obj, separators=(",", ":")).encode()).decode("ascii")

    def loads(self, text, max_age=None):
        try:
            return json.loads(self.fernet.decrypt(text.encode("ascii"), ttl=self.max_age))
        except (InvalidToken, ValueError, UnicodeError):
            raise BadSignature("invalid session cookie") from None


class EncryptedCookieSessionInterface(SecureCookieSessionInterface):
    def get_signing_serializer(self, app):
        if not app.secret_key:
            return None
        return _FernetSerializer(fernet_for(app.secret_key),
                                 int(app.permanent_session_lifetime.total_seconds()))

    def get_cookie_name(self, app):
        return COOKIE_NAME

    def get_cookie_secure(self, app):
        from flask import request
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure

    def get_cookie_httponly(self, app):
        return True

    def get_cookie_samesite(self, app):
        return "Lax"
