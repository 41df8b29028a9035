"""The HTTP session cos-python-sdk-v5 is given: a ``requests.Session`` with a short send path.

The SDK builds, signs and classifies every request (``CosS3Client.send_request``, ``CosS3Auth``,
its error model); it sends through ``session.get/put/post/head/delete(url, params=, headers=,
data=, auth=, timeout=, proxies=)``. A plain ``requests.Session`` then spends about as much CPU
preparing and post-processing the request as urllib3 spends sending it (measured with cProfile
over a warm 10-cover move: merging session settings, parameter and header validation through
``typing`` protocol checks, cookie extraction, hooks, redirect resolution; README, Performance).
On a small SCF tier, where the function gets a fraction of a CPU (SCF doc 583/9207), that CPU is
wall time.

:class:`LeanSession` keeps the ``requests`` interface the SDK uses and does only what these
requests need, in the order ``requests`` does it, so the bytes on the wire are the same:

1. URL: ``url`` + ``?`` + ``urlencode(params)`` (what ``requests`` makes of the SDK's
   already-quoted URLs and plain ``str`` parameters);
2. headers: the session's defaults (``requests.utils.default_headers()``) updated with the
   request's, ``None`` values dropped; ``Content-Length`` as ``requests`` sets it (the body's
   length; ``0`` for a body-less method other than GET/HEAD), before signing, since
   ``CosS3Auth`` signs it;
3. ``auth(prepared)``: the SDK's signature, on an object with ``method``, ``url``, ``headers``;
4. one ``urllib3`` request: no retries, no redirects followed, connect/read timeouts as given,
   body read and decoded (gzip/deflate) at once; TLS verified against certifi's bundle, as
   ``requests`` does;
5. a ``requests.Response`` with ``status_code``, ``headers`` (case-insensitive), ``content``,
   ``url``, ``reason``, ``request``; urllib3 errors become ``requests`` exceptions
   (``ConnectTimeout``, ``ReadTimeout``, ``ConnectionError``), which the SDK turns into
   ``CosClientError``.

What it leaves out, on purpose: cookies (none is read or sent: no state passes between
invocations), environment proxies and ``~/.netrc`` (``trust_env`` is off anyway), hooks, and
redirects (a 3xx is answered to the caller as it came, never followed with the signed request).
A call that asks for anything else (``files``, ``json``, ``stream``, ``proxies``, ``verify``,
``cert``, ``cookies``, ``hooks``, a non-bytes body) goes through ``requests.Session.request``
unchanged.
"""
from __future__ import annotations

from urllib.parse import urlencode

import requests
import urllib3
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ConnectTimeout, ReadTimeout
from requests.structures import CaseInsensitiveDict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

_NO_BODY = frozenset(("GET", "HEAD"))


class _Prepared:
    """What ``CosS3Auth.__call__`` reads (``method``, ``url``, ``headers``) and writes
    (``headers['Authorization']``); also the ``request`` of the response."""

    __slots__ = ("method", "url", "headers", "body")

    def __init__(self, method: str, url: str, headers: CaseInsensitiveDict[str | bytes], body: bytes | None) -> None:
        self.method, self.url, self.headers, self.body = method, url, headers, body


class _ResponseHeaders(CaseInsensitiveDict[str]):
    """Response headers as ``requests`` gives them, with a short ``repr``: the SDK formats every
    response's headers into a debug message whether or not debug logging is on (about 5% of a
    request's CPU); :mod:`cos` turns the SDK's logging down to CRITICAL anyway."""

    def __repr__(self) -> str:
        return f"<{len(self)} response headers>"


class LeanSession(requests.Session):
    """A ``requests.Session`` whose :meth:`request` sends through one urllib3 pool manager.

    Args:
        num_pools: host connection pools kept (urllib3 ``PoolManager(num_pools=)``).
        maxsize: connections kept per host (``maxsize``; more are opened when needed and closed
            after use, ``block=False``, as ``requests.adapters.HTTPAdapter`` does).

    ``trust_env`` is off and cookies are neither stored nor sent. Errors: as ``requests``
    (``requests.exceptions.ConnectTimeout``/``ReadTimeout``/``ConnectionError``).
    """

    def __init__(self, num_pools: int, maxsize: int) -> None:
        super().__init__()
        self.trust_env = False
        self._pool = urllib3.PoolManager(num_pools=num_pools, maxsize=maxsize, block=False,
                                         cert_reqs="CERT_REQUIRED", ca_certs=requests.utils.DEFAULT_CA_BUNDLE_PATH)

    def request(self, method: str, url: str | bytes, params: Mapping[str, str] | None = None, data: Any = None,  # type: ignore[override]
                headers: Mapping[str, Any] | None = None, auth: Any = None, timeout: Any = None,
                allow_redirects: bool = True, proxies: Any = None, **kwargs: Any) -> requests.Response:
        """Send one request (see the module docstring); the signature is ``requests``'."""
        if (any(v is not None for v in kwargs.values()) or proxies or not (data is None or isinstance(data, bytes))
                or isinstance(url, bytes)):
            return super().request(method, url, params=params, data=data, headers=headers, auth=auth, timeout=timeout,
                                   allow_redirects=allow_redirects, proxies=proxies, **kwargs)
        method = method.upper()
        if params:
            url = f"{url}{'&' if '?' in url else '?'}{urlencode([(k, v) for k, v in params.items() if v is not None])}"
        merged: CaseInsensitiveDict[str | bytes] = CaseInsensitiveDict(self.headers)
        for name, value in (headers or {}).items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        body = data or None
        if body is not None:
            merged["Content-Length"] = str(len(body))
        elif method not in _NO_BODY and "Content-Length" not in merged:
            merged["Content-Length"] = "0"
        prepared = _Prepared(method, url, merged, body)
        if auth is not None:
            prepared = auth(prepared)
        try:
            raw = self._pool.urlopen(method, url, body=body, headers=dict(prepared.headers.items()), redirect=False,
                                     retries=False, timeout=_timeout(timeout), preload_content=True, decode_content=True,
                                     assert_same_host=False)
        except urllib3.exceptions.NewConnectionError as exc:  # a subclass of ConnectTimeoutError
            raise RequestsConnectionError(exc, request=prepared) from None  # type: ignore[arg-type]  # duck-typed request, kept only as .request
        except urllib3.exceptions.ConnectTimeoutError as exc:
            raise ConnectTimeout(exc, request=prepared) from None  # type: ignore[arg-type]  # duck-typed request, kept only as .request
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError) as exc:
            raise ReadTimeout(exc, request=prepared) from None  # type: ignore[arg-type]  # duck-typed request, kept only as .request
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise RequestsConnectionError(exc, request=prepared) from None  # type: ignore[arg-type]  # duck-typed request, kept only as .request
        resp = requests.Response()
        resp.status_code = raw.status
        resp.headers = _ResponseHeaders(raw.headers)
        resp.reason = raw.reason  # type: ignore[assignment]  # None without a reason phrase, as requests' adapter sets it
        resp.url = url
        resp.request = prepared  # type: ignore[assignment]
        resp._content = raw.data
        resp._content_consumed = True  # type: ignore[attr-defined]  # requests' private flag (not in its stubs), set as its adapter does
        resp.raw = raw
        return resp

    def close(self) -> None:
        """Close the pooled connections (and those of the fallback adapters)."""
        self._pool.clear()
        super().close()


def _timeout(timeout: Any) -> Any:
    """``requests``' timeout (seconds, ``(connect, read)`` or ``None``) as urllib3's."""
    if isinstance(timeout, tuple):
        return urllib3.Timeout(connect=timeout[0], read=timeout[1])
    if timeout is None:
        return urllib3.Timeout(connect=None, read=None)
    return urllib3.Timeout(connect=timeout, read=timeout)
