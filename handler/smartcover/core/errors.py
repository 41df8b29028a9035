"""Error hierarchy: every error the handler raises on purpose carries its HTTP status.

The SCF shell (``smartcover.scf.app``) turns a :class:`SmartCoverError` into an integration response
with ``statusCode = error.status`` and a JSON body ``{"error": error.code, "message": error.public}``.
Messages are written for the caller: they never echo secrets or internal detail. Anything that is
not a ``SmartCoverError`` is logged with its traceback and answered with a generic 500.
"""
from __future__ import annotations


class SmartCoverError(Exception):
    """Base class. ``status`` is the HTTP status, ``code`` a stable machine-readable name."""

    status = 500
    code = "InternalError"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code)
        self.public = message or self.code


class BadRequest(SmartCoverError):
    """400: the body is not a well-formed callback (syntax, XML attack, types, limits)."""

    status = 400
    code = "BadRequest"


class Unauthorized(SmartCoverError):
    """401: the callback token is missing or wrong, or no token is configured."""

    status = 401
    code = "Unauthorized"


class Forbidden(SmartCoverError):
    """403: the callback names a bucket or region outside ``SMARTCOVER_ALLOWED_*``."""

    status = 403
    code = "Forbidden"

    def __init__(self, message: str = "", bucket: str = "", region: str = "") -> None:
        super().__init__(message)
        self.bucket = bucket
        """The refused bucket ("" when a region was refused); logged as field ``bucket``."""
        self.region = region
        """The refused region ("" when a bucket was refused); logged as field ``region``."""


class MethodNotAllowed(SmartCoverError):
    """405: an HTTP method other than POST reached the callback URL."""

    status = 405
    code = "MethodNotAllowed"


class PayloadTooLarge(SmartCoverError):
    """413: the body exceeds ``SMARTCOVER_MAX_BODY_BYTES``."""

    status = 413
    code = "PayloadTooLarge"


class Unprocessable(SmartCoverError):
    """422: well-formed, but its object names do not fit its own job, or CI does not confirm it."""

    status = 422
    code = "Unprocessable"


class ConfigError(SmartCoverError):
    """500: the function's environment variables are invalid. Raised at start, never per request."""

    status = 500
    code = "ConfigError"


class Unavailable(SmartCoverError):
    """503: a dependency (SSM, COS, CI) failed in a way worth a retry."""

    status = 503
    code = "Unavailable"
