"""COS request signature verification (COS API doc 436/7778) plus temporary-token checks.

The client signs with
    HttpString   = method-lower \\n path \\n url-params \\n headers \\n
    StringToSign = "sha1\\n{q-sign-time}\\n{sha1hex(HttpString)}\\n"
    SignKey      = hex(HMAC-SHA1(SecretKey, q-key-time))
    Signature    = hex(HMAC-SHA1(SignKey, StringToSign))
where url-params/headers are the `name=value` pairs named in q-url-param-list/q-header-list, names
lower-cased, both percent-encoded (safe '-_.~'), sorted and joined with '&' (see qcloud_cos/cos_auth.py).
"""
from __future__ import annotations

import hashlib
import hmac
import threading
import time
from urllib.parse import quote

from .protocol import COSError, Request

_REQUIRED = ("q-sign-algorithm", "q-ak", "q-sign-time", "q-key-time", "q-header-list",
             "q-url-param-list", "q-signature")


def _enc(text: str) -> str:
    return quote(text.encode("utf-8", "surrogateescape"), safe="-_.~")


def _enc_header(raw: str) -> str:
    # http.server decodes header bytes as latin-1; re-encode to the bytes the client signed.
    try:
        return quote(raw.encode("latin-1"), safe="-_.~")
    except UnicodeEncodeError:
        return _enc(raw)


def parse_authorization(value: str) -> dict[str, str]:
    """Split a COS Authorization header into its q-* fields; raises COSError 403 AccessDenied if malformed."""
    fields = dict(part.partition("=")[::2] for part in value.split("&") if part)
    if any(name not in fields for name in _REQUIRED) or fields["q-sign-algorithm"] != "sha1":
        raise COSError(403, "AccessDenied", "The Authorization header is malformed.")
    return fields


def string_to_sign(req: Request, fields: dict[str, str]) -> str:
    """Recompute StringToSign from the actual request and the lists named in the Authorization."""
    params = {_enc(k).lower(): _enc(v) for k, v in req.query.items()}
    headers = {_enc(k).lower(): _enc_header(v) for k, v in req.headers.items()}

    def canon(names: str, values: dict[str, str]) -> str:
        wanted = sorted(n for n in names.split(";") if n)
        return "&".join(f"{n}={values.get(n, '')}" for n in wanted)

    http_string = "\n".join([req.method.lower(), req.path, canon(fields["q-url-param-list"], params),
                             canon(fields["q-header-list"], headers), ""])
    digest = hashlib.sha1(http_string.encode("utf-8", "surrogateescape")).hexdigest()
    return f"sha1\n{fields['q-sign-time']}\n{digest}\n"


def sign(secret_key: str, key_time: str, to_sign: str) -> str:
    """Signature = HMAC-SHA1(HMAC-SHA1(secret_key, key_time).hex, to_sign).hex (436/7778)."""
    sign_key = hmac.new(secret_key.encode(), key_time.encode(), hashlib.sha1).hexdigest()
    return hmac.new(sign_key.encode(), to_sign.encode(), hashlib.sha1).hexdigest()


class Authenticator:
    """Known credentials (SecretId -> SecretKey), required tokens (SecretId -> token) and expired ids.

    Thread-safe; tokens can be expired and renewed while the server runs.
    """

    def __init__(self, credentials: dict[str, str], tokens: dict[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._keys = dict(credentials)
        self._tokens = dict(tokens or {})
        self._expired: set[str] = set()

    def expire_token(self, ak: str) -> None:
        """From now on every request signed by `ak` answers 400 ExpiredToken."""
        with self._lock:
            self._expired.add(ak)

    def set_token(self, ak: str, token: str) -> None:
        """Require `token` for `ak` from now on (and lift an expiry)."""
        with self._lock:
            self._tokens[ak] = token
            self._expired.discard(ak)

    def verify(self, req: Request, now: float | None = None) -> str:
        """Check the request's Authorization and security token; return the SecretId.

        Errors (COSError): no Authorization -> 403 AccessDenied; unknown SecretId -> 403
        InvalidAccessKeyId; expired token -> 400 ExpiredToken; wrong/missing token -> 403 InvalidToken;
        `now` outside q-sign-time -> 403 AccessDenied 'Request has expired'; bad signature -> 403
        SignatureDoesNotMatch. The token header is x-cos-security-token, or x-ci-security-token for CI.
        """
        value = req.headers.get("authorization", "")
        if not value:
            raise COSError(403, "AccessDenied", "Access Denied. The request is not signed.")
        fields = parse_authorization(value)
        ak = fields["q-ak"]
        with self._lock:
            secret, token, expired = self._keys.get(ak), self._tokens.get(ak), ak in self._expired
        if secret is None:
            raise COSError(403, "InvalidAccessKeyId", "The access key Id you provided does not exist in our records.")
        if expired:
            raise COSError(400, "ExpiredToken", "The provided token has expired.")
        header = "x-ci-security-token" if req.service == "ci" else "x-cos-security-token"
        if token is not None and req.headers.get(header) != token:
            raise COSError(403, "InvalidToken", "The provided token is malformed or otherwise invalid.")
        try:
            start, end = (int(t) for t in fields["q-sign-time"].split(";"))
        except ValueError:
            raise COSError(403, "AccessDenied", "The q-sign-time is malformed.") from None
        now = time.time() if now is None else now
        if not start <= now <= end:
            raise COSError(403, "AccessDenied", "Request has expired")
        expected = sign(secret, fields["q-key-time"], string_to_sign(req, fields))
        if not hmac.compare_digest(expected, fields["q-signature"]):
            raise COSError(403, "SignatureDoesNotMatch",
                           "The request signature we calculated does not match the signature you provided.")
        return ak
