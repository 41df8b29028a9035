"""A secret string in Tencent Cloud Secrets Manager (SSM, ``GetSecretValue``, API 2019-09-23).

The callback token lives there when ``SMARTCOVER_TOKEN_SECRET`` names it: :mod:`smartcover.scf.auth`
checks callbacks against it, ``ops.ciops`` and ``ops.doctor`` read it with the same client. This module
is on the path before authentication, so it imports only the standard modules that path already
loads; the tencentcloud SDK is imported when a value is first fetched.
"""
from __future__ import annotations

import os
import threading
import time

from ..core import config as cfg
from ..core.errors import Unavailable

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only (PEP 563): importing typing costs cold-start time
    from collections.abc import Callable, Mapping

REFRESH_FLOOR = 30.0
"""Seconds: ``get(stale=True)`` refetches a value at most this often (a token that does not match)."""


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
            if self._value is None or age >= self._ttl or (stale and age >= REFRESH_FLOOR):
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
            value: str | None = client.GetSecretValue(req).SecretString  # the SDK is untyped: SecretString is a str
        except TencentCloudSDKException as exc:
            raise Unavailable(f"could not read the callback token from SSM ({exc.get_code()})") from None
        except Exception as exc:  # transport errors from requests inside the SDK
            raise Unavailable(f"could not read the callback token from SSM ({type(exc).__name__})") from None
        if not value:
            raise Unavailable("the SSM secret holding the callback token is empty")
        return value
