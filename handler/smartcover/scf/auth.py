"""Callback authentication: a shared secret in the callback URL, checked before any parsing.

CI documents no signature on callbacks, so the URL configured in CI carries a token
(``...?token=<secret>``; the ``X-SmartCover-Token`` header works too). It is compared in constant
time (``hmac.compare_digest``) with ``SMARTCOVER_TOKEN`` or with a secret held in Tencent Cloud
Secrets Manager (SSM, ``GetSecretValue``, API 2019-09-23) named by ``SMARTCOVER_TOKEN_SECRET``.
The SSM value is cached across warm invocations for ``SMARTCOVER_TOKEN_TTL`` seconds and
refetched early (at most every 30 s) when a presented token does not match, so a rotation is
picked up without a redeploy. Secrets are never logged or echoed.
"""
from __future__ import annotations

from ..cloud.ssm import SsmSecret
from ..core import config as cfg
from ..core.errors import Unauthorized
from .events import Request

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only (PEP 563): importing typing costs cold-start time
    from collections.abc import Mapping

__all__ = ["TOKEN_HEADER", "TOKEN_PARAM", "Authenticator", "SsmSecret", "presented_token"]

TOKEN_PARAM = "token"
TOKEN_HEADER = "x-smartcover-token"


def presented_token(request: Request) -> str:
    """The token a request carries: ``?token=`` first, else the ``X-SmartCover-Token`` header."""
    return request.param(TOKEN_PARAM) or request.header(TOKEN_HEADER)


class Authenticator:
    """Decides whether an HTTP request may proceed. Direct invocations are authenticated by CAM.

    Raises (from :meth:`check`):
        Unauthorized: missing or wrong token, or no token configured without ``SMARTCOVER_AUTH=none``.
        Unavailable: the SSM secret could not be read.
    """

    def __init__(self, config: cfg.Config, secret: SsmSecret | None = None, env: Mapping[str, str] | None = None) -> None:
        self._config = config
        self._secret = secret
        if config.token_secret and secret is None:
            self._secret = SsmSecret(config.token_secret, config.ssm_region, config.ssm_endpoint, config.token_ttl, env=env)

    def check(self, request: Request) -> None:
        """Pass silently or raise. Never parses the body."""
        if not request.is_http or self._config.auth_none:
            return
        if not self._config.token and not self._secret:
            raise Unauthorized("no callback token is configured (set SMARTCOVER_TOKEN)")
        given = presented_token(request)
        if not given:
            raise Unauthorized("callback token missing")
        if self._config.token:
            if not _same(given, self._config.token):
                raise Unauthorized("callback token wrong")
            return
        assert self._secret is not None
        if _same(given, self._secret.get()):
            return
        if not _same(given, self._secret.get(stale=True)):
            raise Unauthorized("callback token wrong")


def _same(a: str, b: str) -> bool:
    """Constant-time equality (``hmac.compare_digest``). Tokens of different lengths differ without
    it: compare_digest reveals the lengths anyway, and importing hmac loads OpenSSL (~3 ms of a
    cold start), which most junk requests then do not pay."""
    x, y = a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    if len(x) != len(y):
        return False
    import hmac

    return hmac.compare_digest(x, y)
