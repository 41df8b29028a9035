"""Configuration: every environment variable the function reads, validated once at start.

Names are contracts (deployments and tests set them); each is a constant here and documented in
README.md. Parsing is strict: a junk boolean, an unknown action or a template with an unknown
wildcard raises :class:`ConfigError` when the function starts, never in the middle of a request.
Prefix ``SMARTCOVER_`` because ``SCF_``, ``QCLOUD_`` and ``TENCENTCLOUD_`` are reserved by SCF
(SCF doc 583/30228, environment variables).
"""
from __future__ import annotations

import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only (PEP 563): importing typing costs cold-start time
    from typing import Mapping, Optional

from .errors import ConfigError
from .records import record
from .tags import Tags, parse_tagging
from .templates import TARGET_WILDCARDS, check_template

ACTIONS = "SMARTCOVER_ACTIONS"
TARGET_KEY = "SMARTCOVER_TARGET_KEY"
TARGET_BUCKET = "SMARTCOVER_TARGET_BUCKET"
TARGET_REGION = "SMARTCOVER_TARGET_REGION"
TAGS = "SMARTCOVER_TAGS"
PRESERVE_TAGS = "SMARTCOVER_PRESERVE_TAGS"
OVERWRITE = "SMARTCOVER_OVERWRITE"
COS_ENDPOINT = "SMARTCOVER_COS_ENDPOINT"
COS_TIMEOUT = "SMARTCOVER_COS_TIMEOUT"
COS_RETRIES = "SMARTCOVER_COS_RETRIES"
CONCURRENCY = "SMARTCOVER_CONCURRENCY"
TOKEN = "SMARTCOVER_TOKEN"
TOKEN_SECRET = "SMARTCOVER_TOKEN_SECRET"
TOKEN_TTL = "SMARTCOVER_TOKEN_TTL"
SSM_ENDPOINT = "SMARTCOVER_SSM_ENDPOINT"
SSM_REGION = "SMARTCOVER_SSM_REGION"
AUTH = "SMARTCOVER_AUTH"
ALLOWED_BUCKETS = "SMARTCOVER_ALLOWED_BUCKETS"
ALLOWED_REGIONS = "SMARTCOVER_ALLOWED_REGIONS"
VERIFY_JOB = "SMARTCOVER_VERIFY_JOB"
MAX_BODY_BYTES = "SMARTCOVER_MAX_BODY_BYTES"
MANIFEST_KEY = "SMARTCOVER_MANIFEST_KEY"
DRY_RUN = "SMARTCOVER_DRY_RUN"
ON_FAILURE = "SMARTCOVER_ON_FAILURE"
LOG_LEVEL = "SMARTCOVER_LOG_LEVEL"
CLOCK_SKEW = "SMARTCOVER_CLOCK_SKEW"
QUEUE_IDS = "SMARTCOVER_QUEUE_IDS"
FANOUT_IN_FLIGHT = "SMARTCOVER_FANOUT_IN_FLIGHT"
FANOUT_BATCH = "SMARTCOVER_FANOUT_BATCH"
FANOUT_PREFIX = "SMARTCOVER_FANOUT_PREFIX"
FANOUT_FUNCTION = "SMARTCOVER_FANOUT_FUNCTION"
FANOUT_NAMESPACE = "SMARTCOVER_FANOUT_NAMESPACE"
FANOUT_QUALIFIER = "SMARTCOVER_FANOUT_QUALIFIER"
FANOUT_RESEND_AFTER = "SMARTCOVER_FANOUT_RESEND_AFTER"
SCF_ENDPOINT = "SMARTCOVER_SCF_ENDPOINT"

# SCF execution-role credentials (SCF doc 583/32389); read per invocation, not here.
SECRET_ID = "TENCENTCLOUD_SECRETID"
SECRET_KEY = "TENCENTCLOUD_SECRETKEY"
SESSION_TOKEN = "TENCENTCLOUD_SESSIONTOKEN"
SCF_REGION = "TENCENTCLOUD_REGION"
# set by SCF in every instance (SCF doc 583/30228, built-in environment variables)
SCF_FUNCTION_NAME = "SCF_FUNCTIONNAME"
SCF_NAMESPACE = "SCF_NAMESPACE"

_BUCKET_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?-[0-9]{5,12}")  # fullmatch: "$" would pass a final "\n"
_REGION_RE = re.compile(r"[a-z]{2,}(?:-[a-z0-9]+){1,3}")
_QUEUE_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_QUEUE_IDS = 20
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def valid_bucket(name: str) -> bool:
    """True when ``name`` has COS's ``<name>-<APPID>`` form (lower case, digits, '-')."""
    return bool(_BUCKET_RE.fullmatch(name))


def valid_region(name: str) -> bool:
    """True when ``name`` looks like a COS region id such as ``ap-chongqing``."""
    return bool(_REGION_RE.fullmatch(name))


@record
class Endpoint:
    """Where COS and CI requests go instead of ``*.myqcloud.com`` (Host header and signature kept)."""

    scheme: str
    host: str
    port: int


@record
class Config:
    """The validated configuration. Build it with :meth:`from_env`; the defaults are README's.

    Immutable (:func:`records.record`); :meth:`replace` returns a changed copy. Its ``repr``
    shows whether a token is set, never the token.
    """

    actions: frozenset = frozenset({"tag"})
    target_key: Optional[str] = None
    target_bucket: Optional[str] = None
    target_region: Optional[str] = None
    tags: Tags = ()
    preserve_tags: bool = True
    overwrite: bool = False
    cos_endpoint: Optional[Endpoint] = None
    cos_timeout: float = 5.0
    cos_retries: int = 1
    concurrency: int = 10
    token: Optional[str] = None
    token_secret: Optional[str] = None
    token_ttl: float = 300.0
    ssm_endpoint: Optional[Endpoint] = None
    ssm_region: Optional[str] = None
    auth_none: bool = False
    allowed_buckets: Optional[frozenset] = None
    allowed_regions: Optional[frozenset] = None
    verify_job: bool = True
    max_body_bytes: int = 256 * 1024
    manifest_key: Optional[str] = None
    dry_run: bool = False
    on_failure: str = "ignore"
    log_level: str = "INFO"
    clock_skew: float = 60.0
    queue_ids: tuple = ()
    """CI media queue ids reconcile lists jobs of (``SMARTCOVER_QUEUE_IDS``); empty: discovered."""
    fanout_in_flight: int = 32
    fanout_batch: int = 10
    fanout_prefix: str = "smartcover-fanout/"
    fanout_function: Optional[str] = None
    fanout_namespace: Optional[str] = None
    fanout_qualifier: str = "$LATEST"
    fanout_resend_after: float = 1200.0
    scf_endpoint: Optional[Endpoint] = None

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={'<set>' if name == 'token' and value else value!r}"
                          for name, value in zip(self._fields, self))
        return f"Config({shown})"

    @property
    def moves(self) -> bool:
        """True when covers leave their source (action ``move``)."""
        return "move" in self.actions

    @property
    def copies(self) -> bool:
        """True when covers are copied to a target key (``copy`` or ``move``)."""
        return bool(self.actions & {"copy", "move"})

    def public(self) -> dict:
        """The effective configuration for the start log line: no secret values, only whether set."""
        return {
            "actions": sorted(self.actions),
            "targetKey": self.target_key,
            "targetBucket": self.target_bucket,
            "targetRegion": self.target_region,
            "tags": [k for k, _ in self.tags],
            "preserveTags": self.preserve_tags,
            "overwrite": self.overwrite,
            "cosEndpoint": None if not self.cos_endpoint else f"{self.cos_endpoint.scheme}://{self.cos_endpoint.host}:{self.cos_endpoint.port}",
            "cosTimeout": self.cos_timeout,
            "cosRetries": self.cos_retries,
            "concurrency": self.concurrency,
            "auth": "none" if self.auth_none else ("ssm" if self.token_secret else ("token" if self.token else "unset")),
            "allowedBuckets": sorted(self.allowed_buckets) if self.allowed_buckets else None,
            "allowedRegions": sorted(self.allowed_regions) if self.allowed_regions else None,
            "verifyJob": self.verify_job,
            "maxBodyBytes": self.max_body_bytes,
            "manifestKey": self.manifest_key,
            "dryRun": self.dry_run,
            "onFailure": self.on_failure,
            "clockSkew": self.clock_skew,
            "queueIds": list(self.queue_ids) or None,
            "fanOut": {"inFlight": self.fanout_in_flight, "batch": self.fanout_batch, "prefix": self.fanout_prefix,
                       "function": self.fanout_function, "namespace": self.fanout_namespace,
                       "qualifier": self.fanout_qualifier, "resendAfter": self.fanout_resend_after,
                       "scfEndpoint": None if not self.scf_endpoint else
                       f"{self.scf_endpoint.scheme}://{self.scf_endpoint.host}:{self.scf_endpoint.port}"},
        }

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "Config":
        """Read and validate the ``SMARTCOVER_*`` variables of ``env`` (default ``os.environ``).

        Raises:
            ConfigError: naming the variable and what is wrong with it (never its value when secret).
        """
        env = os.environ if env is None else env
        get = lambda name: (env.get(name) or "").strip()  # noqa: E731 - tiny local helper

        actions = frozenset(a.strip().lower() for a in (get(ACTIONS) or "tag").split(",") if a.strip())
        unknown = actions - {"tag", "copy", "move"}
        if unknown or not actions:
            raise ConfigError(f"{ACTIONS}: use a comma list of tag, copy, move (got {sorted(unknown) or 'nothing'})")
        if {"copy", "move"} <= actions:
            raise ConfigError(f"{ACTIONS}: copy and move are exclusive")

        target_key = get(TARGET_KEY) or None
        if actions & {"copy", "move"}:
            if not target_key:
                raise ConfigError(f"{TARGET_KEY} is required when {ACTIONS} has copy or move")
            problem = check_template(target_key, TARGET_WILDCARDS)
            if problem:
                raise ConfigError(f"{TARGET_KEY}: {problem}")
            if not re.search(r"\$\{(Number|number|OutputName|OutputNameAndExt)\}", target_key):
                raise ConfigError(f"{TARGET_KEY} must contain ${{Number}} (or ${{OutputName}}) so covers get distinct keys")

        target_bucket = get(TARGET_BUCKET) or None
        if target_bucket and not valid_bucket(target_bucket):
            raise ConfigError(f"{TARGET_BUCKET}: not a bucket name of the form name-APPID")
        target_region = get(TARGET_REGION) or None
        if target_region and not valid_region(target_region):
            raise ConfigError(f"{TARGET_REGION}: not a region id such as ap-guangzhou")

        try:
            tags = parse_tagging(get(TAGS)) if get(TAGS) else ()
        except ValueError as exc:
            raise ConfigError(f"{TAGS}: {exc}") from None
        if any(k.startswith("smartcover:") for k, _ in tags):
            raise ConfigError(f"{TAGS}: the smartcover: key prefix is reserved for the function's own tags")
        if len(tags) > 6:
            raise ConfigError(f"{TAGS}: at most 6 extra tags (COS allows 10 per object; 4 are the function's own)")

        overwrite = get(OVERWRITE).lower() or "never"
        if overwrite not in ("never", "always"):
            raise ConfigError(f"{OVERWRITE}: use never or always")

        on_failure = get(ON_FAILURE).lower() or "ignore"
        if on_failure not in ("ignore", "tag"):
            raise ConfigError(f"{ON_FAILURE}: use ignore or tag")

        auth = get(AUTH).lower()
        if auth not in ("", "token", "none"):
            raise ConfigError(f"{AUTH}: use token or none")
        token = get(TOKEN) or None
        token_secret = get(TOKEN_SECRET) or None
        if token and len(token) < 16:
            raise ConfigError(f"{TOKEN}: use at least 16 characters")
        if token and token_secret:
            raise ConfigError(f"set one of {TOKEN} and {TOKEN_SECRET}, not both")
        if auth == "none" and (token or token_secret):
            raise ConfigError(f"{AUTH}=none conflicts with a configured token")
        ssm_region = get(SSM_REGION) or get(SCF_REGION) or None
        if token_secret and not ssm_region:
            raise ConfigError(f"{TOKEN_SECRET} needs a region: set {SSM_REGION} or run on SCF")

        level = (get(LOG_LEVEL) or "INFO").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"{LOG_LEVEL}: use DEBUG, INFO, WARNING or ERROR")

        manifest_key = get(MANIFEST_KEY) or None
        if manifest_key:
            problem = check_template(manifest_key, TARGET_WILDCARDS - {"Number", "number", "OutputName", "OutputNameAndExt", "OutputPath", "ext"})
            if problem:
                raise ConfigError(f"{MANIFEST_KEY}: {problem}")

        queue_ids = tuple(dict.fromkeys(x.strip() for x in get(QUEUE_IDS).split(",") if x.strip()))
        bad = [x for x in queue_ids if not _QUEUE_RE.fullmatch(x)]
        if bad or len(queue_ids) > MAX_QUEUE_IDS:
            raise ConfigError(f"{QUEUE_IDS}: use a comma list of at most {MAX_QUEUE_IDS} CI queue ids such as "
                              f"p2242ab62c7c94486915508540933a2c6 ({len(bad)} malformed)")
        fanout_prefix = get(FANOUT_PREFIX) or "smartcover-fanout/"
        if (not re.fullmatch(r"(?:[A-Za-z0-9_.=-]+/){1,8}", fanout_prefix) or len(fanout_prefix) > 200
                or any(seg in (".", "..") for seg in fanout_prefix.split("/"))):
            raise ConfigError(f"{FANOUT_PREFIX}: use a key prefix such as smartcover-fanout/ (ends with '/', no '.' or '..' segments)")
        fanout_function = get(FANOUT_FUNCTION) or get(SCF_FUNCTION_NAME) or None
        if fanout_function and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{1,59}", fanout_function):
            raise ConfigError(f"{FANOUT_FUNCTION}: not an SCF function name (2-60 of letters, digits, _ and -)")
        fanout_namespace = get(FANOUT_NAMESPACE) or get(SCF_NAMESPACE) or None
        if fanout_namespace and not re.fullmatch(r"[A-Za-z0-9_-]{1,30}", fanout_namespace):
            raise ConfigError(f"{FANOUT_NAMESPACE}: not an SCF namespace")
        fanout_qualifier = get(FANOUT_QUALIFIER) or "$LATEST"
        if not re.fullmatch(r"\$LATEST|\$DEFAULT|[A-Za-z0-9_-]{1,64}", fanout_qualifier):
            raise ConfigError(f"{FANOUT_QUALIFIER}: use $LATEST, a version number or an alias")

        return cls(
            actions=actions,
            target_key=target_key,
            target_bucket=target_bucket,
            target_region=target_region,
            tags=tags,
            preserve_tags=_bool(env, PRESERVE_TAGS, True),
            overwrite=overwrite == "always",
            cos_endpoint=_endpoint(get(COS_ENDPOINT), COS_ENDPOINT),
            cos_timeout=_number(env, COS_TIMEOUT, 5.0, 0.1, 60.0),
            cos_retries=int(_number(env, COS_RETRIES, 1, 0, 3, integer=True)),
            concurrency=int(_number(env, CONCURRENCY, 10, 1, 32, integer=True)),
            token=token,
            token_secret=token_secret,
            token_ttl=_number(env, TOKEN_TTL, 300.0, 0.0, 86400.0),
            ssm_endpoint=_endpoint(get(SSM_ENDPOINT), SSM_ENDPOINT),
            ssm_region=ssm_region,
            auth_none=auth == "none",
            allowed_buckets=_names(get(ALLOWED_BUCKETS), ALLOWED_BUCKETS, valid_bucket),
            allowed_regions=_names(get(ALLOWED_REGIONS), ALLOWED_REGIONS, valid_region),
            verify_job=_bool(env, VERIFY_JOB, True),
            max_body_bytes=int(_number(env, MAX_BODY_BYTES, 256 * 1024, 1024, 6 * 1024 * 1024, integer=True)),
            manifest_key=manifest_key,
            dry_run=_bool(env, DRY_RUN, False),
            on_failure=on_failure,
            log_level=level,
            clock_skew=_number(env, CLOCK_SKEW, 60.0, 0.0, 3600.0),
            queue_ids=queue_ids,
            fanout_in_flight=int(_number(env, FANOUT_IN_FLIGHT, 32, 1, 1000, integer=True)),
            fanout_batch=int(_number(env, FANOUT_BATCH, 10, 1, 100, integer=True)),
            fanout_prefix=fanout_prefix,
            fanout_function=fanout_function,
            fanout_namespace=fanout_namespace,
            fanout_qualifier=fanout_qualifier,
            fanout_resend_after=_number(env, FANOUT_RESEND_AFTER, 1200.0, 1.0, 86400.0),
            scf_endpoint=_endpoint(get(SCF_ENDPOINT), SCF_ENDPOINT),
        )


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{name}: use true or false")


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float, integer: bool = False) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise ConfigError(f"{name}: not a {'whole ' if integer else ''}number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}: must be between {low:g} and {high:g}")
    return value


def _names(raw: str, name: str, check) -> Optional[frozenset]:
    if not raw:
        return None
    items = frozenset(x.strip() for x in raw.split(",") if x.strip())
    bad = sorted(x for x in items if not check(x))
    if bad or not items:
        raise ConfigError(f"{name}: invalid entries {bad}")
    return items


def _endpoint(raw: str, name: str) -> Optional[Endpoint]:
    if not raw:
        return None
    from urllib.parse import urlsplit  # here: only endpoint overrides need it

    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(f"{name}: use scheme://host:port, e.g. http://127.0.0.1:9000")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ConfigError(f"{name}: invalid port") from None
    return Endpoint(parts.scheme, parts.hostname, port)
