"""Immutable records without :mod:`dataclasses`, for the modules a refused request loads.

``import dataclasses`` imports :mod:`inspect` (and with it ``ast``, ``dis``, ``tokenize``...):
about 10 ms (``-X importtime``), next to the 22-29 ms a refused request takes in all (README,
Performance). The modules on the path before authentication (:mod:`config`, :mod:`events`)
declare their records with :func:`record` instead, and so do :mod:`model` and :mod:`plan`, which
every callback loads after it: building their 17 classes as frozen dataclasses cost 7 ms of each cold callback, as
records about 2 ms (README, Where the CPU went). The other modules use dataclasses.

Unlike a dataclass, a record is a tuple: it compares equal to a tuple (or another record) with the
same values, iterates, and ``dataclasses.replace``/``fields`` do not apply (use :func:`replace`).

Type checkers see :func:`record` as a ``dataclass_transform`` (PEP 681) decorator of frozen classes,
so they check fields, constructor calls and immutability; the runtime never imports ``typing``.
"""
from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from typing_extensions import dataclass_transform

    _T = TypeVar("_T")

_SKIP = {"__dict__", "__weakref__", "__module__", "__qualname__"}


def _record(cls: type) -> type:
    """Turn ``cls`` into an immutable record, like ``@dataclass(frozen=True)``.

    The annotated names of the class body are the fields, in order; a value assigned in the body
    is the field's default (use immutable values: the default is shared). The result is a
    ``collections.namedtuple`` subclass with the class's methods, properties and docstring:
    keyword or positional construction, attribute access, no assignment, equality and hashing by
    value, and :meth:`replace` (a copy with some fields changed, as ``dataclasses.replace``).

    Raises:
        TypeError: a field without a default follows one with a default.
    """
    body = dict(cls.__dict__)
    names = list(body.get("__annotations__", {}))
    with_default = [n in body for n in names]
    if with_default and any(with_default[i] and not with_default[i + 1] for i in range(len(names) - 1)):
        raise TypeError(f"{cls.__name__}: fields without a default must come first")
    base = namedtuple(cls.__name__, names, defaults=[body.pop(n) for n in names if n in body], module=cls.__module__)  # type: ignore[misc]
    namespace = {k: v for k, v in body.items() if k not in _SKIP}
    namespace["__slots__"] = ()
    namespace.setdefault("replace", _replace)
    out = type(cls.__name__, (base,), namespace)
    out.__qualname__ = cls.__qualname__
    out.__module__ = cls.__module__
    return out


def _replace(self: Any, **changes: Any) -> Any:
    """A copy with ``changes`` applied (field names as keywords)."""
    return self._replace(**changes)


if TYPE_CHECKING:
    @dataclass_transform(frozen_default=True)
    def record(cls: type[_T]) -> type[_T]:
        """See :func:`_record`."""

    def fields(value: object) -> tuple[str, ...]:
        """The field names of the record ``value`` (or record class), in order, as ``dataclasses.fields``."""

    def replace(value: _T, **changes: Any) -> _T:
        """A copy of the record ``value`` with ``changes`` applied, as ``dataclasses.replace``.

        Raises:
            ValueError: a name in ``changes`` is not a field.
        """
else:
    record = _record

    def fields(value):
        """The field names of the record ``value`` (or record class), in order, as ``dataclasses.fields``."""
        return value._fields

    def replace(value, **changes):
        """A copy of the record ``value`` with ``changes`` applied, as ``dataclasses.replace``.

        Raises:
            ValueError: a name in ``changes`` is not a field.
        """
        return value._replace(**changes)
