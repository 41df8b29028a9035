"""Configuration: every environment variable the function reads, validated once at start.

Names are contracts (deployments and tests set them); each is a constant here and documented in
README.md. Parsing is strict: a junk boolean, an unknown action or a template with an unknown
wildcard raises :class:`ConfigError` when the function starts, never in the middle of a request.
Prefix ``SMARTCOVER_`` because ``SCF_``, ``QCLOUD_`` and ``TENCENTCLOUD_`` are reserved by SCF
(SCF doc 583/30228, environment variables).

The known names are the module-level constants below whose value starts with ``SMARTCOVER_``
(:func:`known_names` reads them from this module): **a new variable only needs its constant
here** (and its row in README's configuration table; ``tests/test_config_messages.py`` checks
that every name is documented). Any other ``SMARTCOVER_*`` name in the environment is reported
at start as a warning line ``config.unknown`` with the closest known name (``Config.unknown``),
so a typo such as ``SMARTCOVER_ACTION=move`` is not silently ignored.

Messages name the value they got (never a secret's) and the form they expect: a region outside
COS's region list (COS doc 436/6224) with the closest known one, ``SMARTCOVER_TAGS`` with ``,``
(``&`` separates tags), a bucket without ``-APPID``, a key template whose ``${...}`` the shell
expanded to nothing (hint: single quotes). A target bucket or region outside the allow-lists is
an error here, at start, not a 403 blamed on the next callback.
"""
from __future__ import annotations

import os
import re

from .errors import ConfigError
from .records import fields, record
from .tags import Tags, parse_tagging
from .templates import TARGET_WILDCARDS, check_template

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only (PEP 563): importing typing costs cold-start time
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

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
# Read by the test suite, not by the function (tests/test_fuzz.py, tests/test_faults.py,
# tests/test_localcos_quirks.py): known, so that a developer's environment does not warn.
FUZZ_EXAMPLES = "SMARTCOVER_FUZZ_EXAMPLES"
FAULT_SCHEDULES = "SMARTCOVER_FAULT_SCHEDULES"
QUIRK_SCHEDULES = "SMARTCOVER_QUIRK_SCHEDULES"
PREFIX = "SMARTCOVER_"

# COS regions (COS doc 436/6224, "Regions and Access Endpoints"): public cloud and financial
# regions. A region outside this list that is close to one of them is a typo (configuration error
# with the closest one); one far from all is only warned about, since Tencent adds regions.
COS_REGIONS = frozenset({
    "ap-beijing-1", "ap-beijing", "ap-nanjing", "ap-shanghai", "ap-guangzhou", "ap-chengdu", "ap-chongqing",
    "ap-shenzhen-fsi", "ap-shanghai-fsi", "ap-beijing-fsi", "ap-hongkong", "ap-singapore", "ap-jakarta",
    "ap-seoul", "ap-bangkok", "ap-tokyo", "ap-mumbai", "na-siliconvalley", "na-ashburn", "na-toronto",
    "sa-saopaulo", "eu-frankfurt", "eu-moscow",
})

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


def known_names() -> frozenset[str]:
    """Every ``SMARTCOVER_*`` name this version knows: the values of this module's constants
    that start with ``SMARTCOVER_`` (the one list; add a constant to add a variable)."""
    return frozenset(v for k, v in globals().items()
                     if k.isupper() and isinstance(v, str) and v.startswith(PREFIX) and v != PREFIX)


def closest(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The entry of ``choices`` most like ``word`` (:func:`difflib.get_close_matches`), or None."""
    import difflib  # here: only a typo needs it, not every cold start

    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=cutoff)
    return found[0] if found else None


def unknown_names(env: Mapping[str, str]) -> tuple[tuple[str, str | None], ...]:
    """``((name, closest known name or None), ...)`` for the ``SMARTCOVER_*`` names of ``env``
    this version does not know, sorted by name."""
    known = known_names()
    odd = sorted(n for n in env if n.startswith(PREFIX) and n not in known)
    return tuple((n, closest(n, known)) for n in odd)


def region_problem(name: str, value: str) -> str | None:
    """Why ``value`` is not a usable region for variable ``name`` (``None`` when it is one of
    :data:`COS_REGIONS` or, far from all of them, has the region form ``ap-xxx``)."""
    if value in COS_REGIONS:
        return None
    near = closest(value, COS_REGIONS, cutoff=0.75)
    if near:
        return f"{name}: {value!r} is not a COS region; did you mean {near!r}? (regions look like ap-guangzhou, COS doc 436/6224)"
    if not valid_region(value):
        return f"{name}: {value!r} is not a region id; use the form ap-guangzhou (COS doc 436/6224)"
    return None


def bucket_problem(name: str, value: str) -> str | None:
    """Why ``value`` is not a bucket ``name-APPID`` for variable ``name``, or ``None``."""
    if valid_bucket(value):
        return None
    hint = ""
    if re.fullmatch(r"[a-z0-9][a-z0-9-]*", value) and not re.search(r"-[0-9]{5,12}$", value):
        hint = f"; a bucket is named with its APPID, e.g. {value}-1250000000 (name-APPID, as in the COS console)"
    elif value != value.lower():
        hint = f"; bucket names are lower case, e.g. {value.lower()}"
    return f"{name}: {value!r} is not a bucket name of the form name-APPID{hint}"


def looks_shell_expanded(template: str) -> bool:
    """True when a key template looks like one whose ``${...}`` wildcards a shell replaced by
    nothing (double quotes or no quotes): no ``${`` left, and an empty path segment, a leading
    or trailing ``/``, or a separator right before the extension (``covers//.``, ``c/-.jpg``)."""
    return "${" not in template and bool(re.search(r"//|^/|/$|/\.|[-_/]\.[A-Za-z0-9]*$|^\.|^-", template))


def _expanded_hint(name: str, value: str) -> str:
    if not looks_shell_expanded(value):
        return ""
    return (f" (got {value!r}: it looks like the shell replaced ${{...}} by nothing; put the value in single "
            f"quotes, e.g. {name}='covers/${{InputName}}/${{jobid}}/${{Number}}.${{ext}}', or write $${{...}} in a Makefile)")


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

    actions: frozenset[str] = frozenset({"tag"})
    target_key: str | None = None
    target_bucket: str | None = None
    target_region: str | None = None
    tags: Tags = ()
    preserve_tags: bool = True
    overwrite: bool = False
    cos_endpoint: Endpoint | None = None
    cos_timeout: float = 5.0
    cos_retries: int = 1
    concurrency: int = 10
    token: str | None = None
    token_secret: str | None = None
    token_ttl: float = 300.0
    ssm_endpoint: Endpoint | None = None
    ssm_region: str | None = None
    auth_none: bool = False
    allowed_buckets: frozenset[str] | None = None
    allowed_regions: frozenset[str] | None = None
    verify_job: bool = True
    max_body_bytes: int = 256 * 1024
    manifest_key: str | None = None
    dry_run: bool = False
    on_failure: str = "ignore"
    log_level: str = "INFO"
    clock_skew: float = 60.0
    unknown: tuple[tuple[str, str | None], ...] = ()
    """``((name, closest known name or None), ...)``: ``SMARTCOVER_*`` names nobody reads (warned at start)."""
    notices: tuple[str, ...] = ()
    """``(message, ...)``: settings accepted but worth a warning at start (e.g. a region not in the list)."""
    queue_ids: tuple[str, ...] = ()
    """CI media queue ids reconcile lists jobs of (``SMARTCOVER_QUEUE_IDS``); empty: discovered."""
    fanout_in_flight: int = 32
    fanout_batch: int = 10
    fanout_prefix: str = "smartcover-fanout/"
    fanout_function: str | None = None
    fanout_namespace: str | None = None
    fanout_qualifier: str = "$LATEST"
    fanout_resend_after: float = 1200.0
    scf_endpoint: Endpoint | None = None

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={'<set>' if name == 'token' and value else value!r}"
                          for name, value in ((name, getattr(self, name)) for name in fields(self)))
        return f"Config({shown})"

    @property
    def moves(self) -> bool:
        """True when covers leave their source (action ``move``)."""
        return "move" in self.actions

    @property
    def copies(self) -> bool:
        """True when covers are copied to a target key (``copy`` or ``move``)."""
        return bool(self.actions & {"copy", "move"})

    def public(self) -> dict[str, Any]:
        """The effective configuration for the start log line: no secret values, only whether set."""
        return {
            "actions": sorted(self.actions),
            "targetKey": self.target_key,
            "targetBucket": self.target_bucket,
            "targetRegion": self.target_region,
            "tags": [k for k, _ in self.tags],
            "preserveTags": self.preserve_tags,
            "overwrite": "always" if self.overwrite else "never",
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
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Read and validate the ``SMARTCOVER_*`` variables of ``env`` (default ``os.environ``).

        Raises:
            ConfigError: naming the variable and what is wrong with it (never its value when secret).
        """
        env = os.environ if env is None else env

        def get(name: str) -> str:
            return (env.get(name) or "").strip()

        actions = frozenset(a.strip().lower() for a in (get(ACTIONS) or "tag").split(",") if a.strip())
        unknown = actions - {"tag", "copy", "move"}
        if unknown or not actions:
            near = [closest(a, ("tag", "copy", "move")) for a in sorted(unknown)]
            hint = "; did you mean " + ", ".join(repr(n) for n in near if n) + "?" if any(near) else ""
            raise ConfigError(f"{ACTIONS}: use a comma list of tag, copy, move (got {get(ACTIONS)!r}){hint}")
        if {"copy", "move"} <= actions:
            raise ConfigError(f"{ACTIONS}: copy and move are exclusive")

        target_key = get(TARGET_KEY) or None
        if actions & {"copy", "move"}:
            if not target_key:
                raise ConfigError(f"{TARGET_KEY} is required when {ACTIONS} has copy or move"
                                  + (" (it is set but empty: a shell may have expanded its ${...}; use single quotes)"
                                     if TARGET_KEY in env else ""))
            problem = check_template(target_key, TARGET_WILDCARDS)
            if problem:
                raise ConfigError(f"{TARGET_KEY}: {problem} (got {target_key!r})")
            if not re.search(r"\$\{(Number|number|OutputName|OutputNameAndExt)\}", target_key):
                raise ConfigError(f"{TARGET_KEY} must contain ${{Number}} (or ${{OutputName}}) so covers get distinct keys"
                                  + (_expanded_hint(TARGET_KEY, target_key) or f" (got {target_key!r})"))

        target_bucket = get(TARGET_BUCKET) or None
        bad_bucket = bucket_problem(TARGET_BUCKET, target_bucket) if target_bucket else None
        if bad_bucket:
            raise ConfigError(bad_bucket)
        target_region = get(TARGET_REGION) or None
        notices: list[str] = []
        for name, value in ((TARGET_REGION, target_region), (SSM_REGION, get(SSM_REGION))):
            if value:
                problem = region_problem(name, value)
                if problem:
                    raise ConfigError(problem)
                if value not in COS_REGIONS:
                    notices.append(f"{name}: {value!r} is not in this version's list of COS regions (COS doc 436/6224)")

        raw_tags = get(TAGS)
        try:
            tags = parse_tagging(raw_tags) if raw_tags else ()
        except ValueError as exc:
            hint = (" ('&' separates tags, not ','; e.g. a=b&c=d)" if "," in raw_tags and "&" not in raw_tags
                    else " (form k1=v1&k2=v2, URL-encoded)")
            raise ConfigError(f"{TAGS}: {exc}: got {raw_tags!r}{hint}") from None
        if any(k.startswith("smartcover:") for k, _ in tags):
            raise ConfigError(f"{TAGS}: the smartcover: key prefix is reserved for the function's own tags")
        if len(tags) > 6:
            raise ConfigError(f"{TAGS}: at most 6 extra tags (COS allows 10 per object; 4 are the function's own)")

        overwrite = get(OVERWRITE).lower() or "never"
        if overwrite not in ("never", "always"):
            raise ConfigError(f"{OVERWRITE}: use never or always (got {overwrite!r})")

        on_failure = get(ON_FAILURE).lower() or "ignore"
        if on_failure not in ("ignore", "tag"):
            raise ConfigError(f"{ON_FAILURE}: use ignore or tag (got {on_failure!r})")

        auth = get(AUTH).lower()
        if auth not in ("", "token", "none"):
            raise ConfigError(f"{AUTH}: use token or none (got {auth!r})")
        token = get(TOKEN) or None
        token_secret = get(TOKEN_SECRET) or None
        if token and len(token) < 16:
            raise ConfigError(f"{TOKEN}: use at least 16 characters (got {len(token)} characters)")
        if token and token_secret:
            raise ConfigError(f"set one of {TOKEN} and {TOKEN_SECRET}, not both")
        if auth == "none" and (token or token_secret):
            raise ConfigError(f"{AUTH}=none conflicts with a configured token")
        ssm_region = get(SSM_REGION) or get(SCF_REGION) or None
        if token_secret and not ssm_region:
            raise ConfigError(f"{TOKEN_SECRET} needs a region: set {SSM_REGION} or run on SCF")

        level = (get(LOG_LEVEL) or "INFO").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"{LOG_LEVEL}: use DEBUG, INFO, WARNING or ERROR (got {level!r})")

        manifest_key = get(MANIFEST_KEY) or None
        if manifest_key:
            per_cover = {"Number", "number", "OutputName", "OutputNameAndExt", "OutputPath", "ext"}
            problem = check_template(manifest_key, TARGET_WILDCARDS - per_cover)
            if problem:
                raise ConfigError(f"{MANIFEST_KEY}: {problem} (got {manifest_key!r})")
            if looks_shell_expanded(manifest_key):
                raise ConfigError(f"{MANIFEST_KEY}: an empty path segment" + _expanded_hint(MANIFEST_KEY, manifest_key))

        allowed_buckets = _names(get(ALLOWED_BUCKETS), ALLOWED_BUCKETS, bucket_problem)
        allowed_regions = _names(get(ALLOWED_REGIONS), ALLOWED_REGIONS, region_problem)
        for name, value in ((ALLOWED_REGIONS, r) for r in sorted(allowed_regions or ())):
            if value not in COS_REGIONS:
                notices.append(f"{name}: {value!r} is not in this version's list of COS regions (COS doc 436/6224)")
        if target_bucket and allowed_buckets is not None and target_bucket not in allowed_buckets:
            raise ConfigError(f"{TARGET_BUCKET}={target_bucket!r} is not in {ALLOWED_BUCKETS} "
                              f"({', '.join(sorted(allowed_buckets))}): "
                              f"add it there, or the function would refuse every callback (403)")
        if target_region and allowed_regions is not None and target_region not in allowed_regions:
            raise ConfigError(f"{TARGET_REGION}={target_region!r} is not in {ALLOWED_REGIONS} "
                              f"({', '.join(sorted(allowed_regions))}): "
                              f"add it there, or the function would refuse every callback (403)")

        queue_ids = tuple(dict.fromkeys(x.strip() for x in get(QUEUE_IDS).split(",") if x.strip()))
        bad = [x for x in queue_ids if not _QUEUE_RE.fullmatch(x)]
        if bad or len(queue_ids) > MAX_QUEUE_IDS:
            raise ConfigError(f"{QUEUE_IDS}: use a comma list of at most {MAX_QUEUE_IDS} CI queue ids such as "
                              f"p2242ab62c7c94486915508540933a2c6 (got {get(QUEUE_IDS)[:200]!r}: {len(bad)} malformed)")
        fanout_prefix = get(FANOUT_PREFIX) or "smartcover-fanout/"
        if (not re.fullmatch(r"(?:[A-Za-z0-9_.=-]+/){1,8}", fanout_prefix) or len(fanout_prefix) > 200
                or any(seg in (".", "..") for seg in fanout_prefix.split("/"))):
            raise ConfigError(f"{FANOUT_PREFIX}: use a key prefix such as smartcover-fanout/ "
                              f"(ends with '/', no '.' or '..' segments; got {fanout_prefix[:200]!r})")
        fanout_function = get(FANOUT_FUNCTION) or get(SCF_FUNCTION_NAME) or None
        if fanout_function and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{1,59}", fanout_function):
            raise ConfigError(f"{FANOUT_FUNCTION}: not an SCF function name "
                              f"(2-60 of letters, digits, _ and -; got {fanout_function[:100]!r})")
        fanout_namespace = get(FANOUT_NAMESPACE) or get(SCF_NAMESPACE) or None
        if fanout_namespace and not re.fullmatch(r"[A-Za-z0-9_-]{1,30}", fanout_namespace):
            raise ConfigError(f"{FANOUT_NAMESPACE}: not an SCF namespace "
                              f"(1-30 of letters, digits, _ and -; got {fanout_namespace[:100]!r})")
        fanout_qualifier = get(FANOUT_QUALIFIER) or "$LATEST"
        if not re.fullmatch(r"\$LATEST|\$DEFAULT|[A-Za-z0-9_-]{1,64}", fanout_qualifier):
            raise ConfigError(f"{FANOUT_QUALIFIER}: use $LATEST, a version number or an alias (got {fanout_qualifier[:100]!r})")

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
            allowed_buckets=allowed_buckets,
            allowed_regions=allowed_regions,
            verify_job=_bool(env, VERIFY_JOB, True),
            max_body_bytes=int(_number(env, MAX_BODY_BYTES, 256 * 1024, 1024, 6 * 1024 * 1024, integer=True)),
            manifest_key=manifest_key,
            dry_run=_bool(env, DRY_RUN, False),
            on_failure=on_failure,
            log_level=level,
            clock_skew=_number(env, CLOCK_SKEW, 60.0, 0.0, 3600.0),
            unknown=unknown_names(env),
            notices=tuple(notices),
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
    raise ConfigError(f"{name}: use true or false (got {raw!r})")


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float, integer: bool = False) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise ConfigError(f"{name}: not a {'whole ' if integer else ''}number (got {raw!r})") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}: must be between {low:g} and {high:g} (got {raw!r})")
    return value


def _names(raw: str, name: str, problem: Callable[[str, str], str | None]) -> frozenset[str] | None:
    """A comma list; ``problem(name, entry)`` says what is wrong with an entry (first one raised)."""
    if not raw:
        return None
    items = frozenset(x.strip() for x in raw.split(",") if x.strip())
    if not items:
        raise ConfigError(f"{name}: no entries in {raw!r}; use a comma list")
    for item in sorted(items):
        message = problem(name, item)
        if message:
            raise ConfigError(message)
    return items


def _endpoint(raw: str, name: str) -> Endpoint | None:
    if not raw:
        return None
    from urllib.parse import urlsplit  # here: only endpoint overrides need it

    try:
        parts = urlsplit(raw)
    except ValueError:  # e.g. "Invalid IPv6 URL"
        raise ConfigError(f"{name}: use scheme://host:port, e.g. http://127.0.0.1:9000 (got {raw!r})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(f"{name}: use scheme://host:port, e.g. http://127.0.0.1:9000 (got {raw!r})")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ConfigError(f"{name}: invalid port (got {raw!r})") from None
    return Endpoint(parts.scheme, parts.hostname, port)
