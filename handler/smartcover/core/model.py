"""Typed, immutable model of a CI job-finished notification (and of CI's job query answer).

Covers every node of CI's "Intelligent Thumbnail" callback document (CI doc, SmartCover callback
content; the official samples are in ``tests/events/``). XML and JSON forms of the same callback parse to equal
objects (see :mod:`smartcover.core.parse`). Times are timezone-aware ``datetime``; numbers ``int``;
booleans ``bool``; absent optional nodes ``None``; repeated nodes tuples (a single item is a tuple
of one).

The classes are :func:`records.record` records (immutable, equal and hashed by value, keyword or
positional construction, ``replace``), not ``@dataclass(frozen=True)``: building 13 dataclasses
cost 5-6 ms of every cold callback, records about 2 ms (``-X importtime``; README, Where the CPU
went).
"""
from __future__ import annotations

from .records import record

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only (PEP 563)
    from datetime import datetime


@record
class ObjectRef:
    """One COS object: bucket (``name-APPID``), region, decoded key."""

    bucket: str
    region: str
    key: str

    def __str__(self) -> str:
        return f"{self.bucket}/{self.key}"


@record
class CosHeader:
    """One ``Input.CosHeaders`` entry (present for workflow-triggered jobs)."""

    key: str
    value: str


@record
class Input:
    """``JobsDetail.Input``: the source video. ``bucket`` is ``name-APPID``."""

    bucket: str
    object: str
    region: str
    cos_headers: tuple[CosHeader, ...] = ()


@record
class Md5Info:
    """``OutputFile.Md5Info``: MD5 of one output object (empty in SmartCover samples)."""

    object_name: str
    md5: str


@record
class OutputFile:
    """``MediaResult.OutputFile``: what the job wrote. Key of a cover = ``object_prefix + name``."""

    bucket: str
    region: str
    object_names: tuple[str, ...]
    object_prefix: str = ""
    md5_info: tuple[Md5Info, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        """Full object keys of the outputs, in CI's order."""
        return tuple(self.object_prefix + name for name in self.object_names)


@record
class Output:
    """``Operation.Output``: where the job was told to write; ``object`` is the key template."""

    bucket: str
    region: str
    object: str


@record
class SmartCover:
    """``Operation.SmartCover`` parameters: Count 1-10, Format jpg/png/webp, Width/Height pixels."""

    count: int | None = None
    delete_duplicates: bool | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None


@record
class MediaInfo:
    """``Operation.MediaInfo``: format and stream containers (empty for SmartCover).

    Non-empty containers are kept as sorted ``(name, text)`` pairs of their leaf nodes so that
    the model stays immutable and comparable without modelling every media job type.
    """

    format: tuple[tuple[str, str], ...] = ()
    audio: tuple[tuple[str, str], ...] = ()
    subtitle: tuple[tuple[str, str], ...] = ()
    video: tuple[tuple[str, str], ...] = ()


@record
class Operation:
    """``JobsDetail.Operation``."""

    media_info: MediaInfo = MediaInfo()
    output_file: OutputFile | None = None
    output: Output | None = None
    smart_cover: SmartCover | None = None
    user_data: str = ""
    template_id: str = ""
    """``Operation.TemplateId``: a job submitted with a template carries it, and CI's job record
    then shows no ``SmartCover`` node (CI doc 436/76945; platform facts section 8)."""


@record
class Workflow:
    """``JobsDetail.Workflow`` (present when a workflow triggered the job)."""

    name: str = ""
    run_id: str = ""
    workflow_id: str = ""
    workflow_name: str = ""


@record
class Job:
    """One ``JobsDetail``. ``state``: Submitted, Running, Success, Failed, Pause, Cancel."""

    job_id: str
    state: str
    tag: str
    code: str = ""
    message: str = ""
    queue_id: str = ""
    creation_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    input: Input | None = None
    operation: Operation = Operation()
    workflow: Workflow | None = None


@record
class Unreadable:
    """A ``JobsDetail`` of CI's job list that could not be read: its JobId (``""`` when it has no
    well-formed one) and why (the parser's message)."""

    job_id: str
    reason: str


@record
class Callback:
    """The whole notification: ``EventName`` (TaskFinish, WorkflowFinish, ...) and its jobs.

    ``jobs`` is empty for events that carry no ``JobsDetail`` (e.g. WorkflowFinish).
    ``next_token`` and ``non_exist_job_ids`` are filled only for CI job-query answers, and
    ``unreadable`` only for a job list read with ``parse_body(..., tolerant=True)``.
    """

    event_name: str
    jobs: tuple[Job, ...] = ()
    next_token: str = ""
    non_exist_job_ids: tuple[str, ...] = ()
    unreadable: tuple[Unreadable, ...] = ()
