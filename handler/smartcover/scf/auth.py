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

import os
import threading
import time

from ..core import config as cfg
from ..core.errors import Unauthorized, Unavailable
from .events import Request

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only (PEP 563): importing typing costs cold-start time
    from collections.abc import Callable, Mapping

TOKEN_PARAM = "token"
TOKEN_HEADER = "x-smartcover-token"
_REFRESH_FLOOR = 30.0


def presented_token(request: Request) -> str:
    """The token a request carries: ``?token=`` first, else the ``X-SmartCover-Token`` header."""
    return request.param(TOKEN_PARAM) or request.header(TOKEN_HEADER)


class SsmSecret:
    """A secret string read from SSM with the execution role's temporary credentials.

    ``name`` is ``SecretName`` or ``SecretName@VersionId``; without a version, ``SSM_Current``
    is asked for (SSM doc: GetSecretValue; the tencentcloud-sdk-python-ssm client is imported
    only when first needed, so it costs nothing to deployments that do not use it).
    """

    def __init__(self, name: str, region: str | None, endpoint: cfg.Endpoint | None, ttl: float,
                 env: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._name, _, version = name.partition("@")
        self._version = version or "SSM_Current"
        self._region = region
        self._endpoint = endpoint
        self._ttl = ttl
        self._env = os.environ if env is None else env
        self._clock = clock
        self._lock = threading.Lock()
        self._value: str | None = None
        self._fetched = float("-inf")

    def get(self, stale: bool = False) -> str:
        """Return the secret, fetching it when absent, older than the TTL, or (``stale=True``)
        older than 30 s.

        Raises:
            Unavailable: SSM could not be reached or refused (worth a retry).
        """
        with self._lock:
            age = self._clock() - self._fetched
            if self._value is None or age >= self._ttl or (stale and age >= _REFRESH_FLOOR):
                self._value = self._fetch()
                self._fetched = self._clock()
            return self._value

    def _fetch(self) -> str:
        from tencentcloud.common import credential
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.ssm.v20190923 import models, ssm_client

        try:
            cred = credential.Credential(self._env.get(cfg.SECRET_ID, ""), self._env.get(cfg.SECRET_KEY, ""),
                                         self._env.get(cfg.SESSION_TOKEN) or None)
            http = HttpProfile(reqTimeout=3)
            if self._endpoint:
                http.endpoint = f"{self._endpoint.host}:{self._endpoint.port}"
                http.scheme = self._endpoint.scheme
            client = ssm_client.SsmClient(cred, self._region or "ap-guangzhou", ClientProfile(httpProfile=http))
            req = models.GetSecretValueRequest()
            req.SecretName = self._name
            req.VersionId = self._version
            value = client.GetSecretValue(req).SecretString
        except TencentCloudSDKException as exc:
            raise Unavailable(f"could not read the callback token from SSM ({exc.get_code()})") from None
        except Exception as exc:  # transport errors from requests inside the SDK
            raise Unavailable(f"could not read the callback token from SSM ({type(exc).__name__})") from None
        if not value:
            raise Unavailable("the SSM secret holding the callback token is empty")
        return value


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
