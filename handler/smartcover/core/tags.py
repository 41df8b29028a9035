"""COS object tags: parse, validate, encode and merge, within COS's limits.

COS has two tag pages (COS API doc 436/35709 PUT Object tagging, 436/42998 / 436/35665 tag
limits); this module follows the stricter reading of both: at most 10 tags per object; a key of
1-127 characters and a value of 1-255 characters, each also under 128 / 256 bytes in UTF-8 (GET
tagging's wording); no empty values; letters (ASCII, and Chinese: CJK Unified Ideographs
U+4E00-U+9FFF), digits, space and ``+ - = . _ : / @``. A value that does not fit is written in the
reversible ``b64:`` form (:func:`fit_value`). ``x-cos-tagging`` carries tags URL-encoded as
``k1=v1&k2=v2``.
"""
from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only (PEP 563): importing typing costs cold-start time
    from collections.abc import Iterable

if TYPE_CHECKING:
    Tags = tuple[tuple[str, str], ...]
else:
    Tags = tuple
"""An ordered, immutable tag set: ``(("key", "value"), ...)``."""

MAX_TAGS = 10
MAX_KEY = 127
"""Characters, and UTF-8 bytes, of a tag key at most (COS: 1-127 characters, under 128 bytes)."""
MAX_VALUE = 255
"""Characters, and UTF-8 bytes, of a tag value at most (COS: 1-255 characters, under 256 bytes)."""
_CHARS = re.compile("[A-Za-z0-9 +\\-=._:/@\u4e00-\u9fff]+")  # fullmatch: "$" would pass a final "\n"


class TagLimitError(ValueError):
    """The merged tag set would exceed COS's 10 tags per object."""


def tag_problem(key: str, value: str) -> str | None:
    """Say what is wrong with one tag under COS rules (module docstring), or ``None`` if it is valid."""
    if not isinstance(key, str) or not key or len(key.encode("utf-8", "surrogatepass")) > MAX_KEY:
        return f"tag key must be 1-{MAX_KEY} characters (under {MAX_KEY + 1} bytes)"
    if not isinstance(value, str) or not value or len(value.encode("utf-8", "surrogatepass")) > MAX_VALUE:
        return f"tag value must be 1-{MAX_VALUE} characters (under {MAX_VALUE + 1} bytes)"
    if not _CHARS.fullmatch(key) or not _CHARS.fullmatch(value):
        return "tags may use letters (Chinese included), digits, space and + - = . _ : / @ only"
    return None


def parse_tagging(raw: str) -> Tags:
    """Parse ``k1=v1&k2=v2`` (each part URL-encoded, ``+`` kept literally as COS does).

    Raises:
        ValueError: an empty part, a repeated key, more than 10 tags, or a tag outside COS rules.
    """
    from urllib.parse import unquote  # imported where used: not on a refused request's path

    tags = []
    for part in raw.split("&"):
        if "=" not in part or not part.split("=", 1)[0]:
            raise ValueError("use k1=v1&k2=v2")
        key, value = (unquote(x, errors="strict") for x in part.split("=", 1))
        problem = tag_problem(key, value)
        if problem:
            raise ValueError(problem)
        tags.append((key, value))
    if len({k for k, _ in tags}) != len(tags):
        raise ValueError("a tag key is repeated")
    if len(tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return tuple(tags)


def encode_tagging(tags: Iterable[tuple[str, str]]) -> str:
    """Encode for the ``x-cos-tagging`` header: ``quote(k)=quote(v)`` joined by ``&``."""
    from urllib.parse import quote

    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in tags)


def fit_value(text: str) -> str | None:
    """Make ``text`` a valid tag value: as is when it fits (Chinese and ``@`` included); else
    ``b64:`` + URL-safe Base64 of its UTF-8 bytes (reversible, all characters allowed); ``None``
    for an empty text (COS allows no empty value) or when even the ``b64:`` form exceeds
    :data:`MAX_VALUE`."""
    if not text:
        return None
    if tag_problem("k", text) is None and not text.startswith("b64:"):
        return text
    import base64

    encoded = "b64:" + base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode("ascii")
    return encoded if len(encoded) <= MAX_VALUE else None


def merge(existing: Iterable[tuple[str, str]], ours: Iterable[tuple[str, str]]) -> Tags:
    """Keep ``existing`` tags and add or update ``ours`` (ours win on the same key).

    Raises:
        TagLimitError: when the result would have more than 10 tags.
    """
    merged = dict(existing)
    merged.update(ours)
    if len(merged) > MAX_TAGS:
        raise TagLimitError(f"object would carry {len(merged)} tags; COS allows {MAX_TAGS}")
    return tuple(merged.items())
