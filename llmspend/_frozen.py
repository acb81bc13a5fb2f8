"""A quicker ``__init__`` for the small frozen records built on every call.

``dataclass(frozen=True)`` makes ``__init__`` set each field through ``object.__setattr__``
(its own ``__setattr__`` refuses), one call per field. :func:`quick_init` gives such a class an
``__init__`` with the same signature, defaults and default factories that writes the fields
into the instance ``__dict__`` instead, which is what ``object.__setattr__`` ends up doing.
For :class:`~llmspend.providers.base.Call`, ``Usage``, ``Outcome`` and
:class:`~llmspend.pricing.cost.Cost` that halves their construction, on every call's path.
Instances stay frozen: assigning to a field still raises ``FrozenInstanceError``.

    >>> from dataclasses import dataclass, field
    >>> @quick_init
    ... @dataclass(frozen=True)
    ... class Point:
    ...     x: int
    ...     y: int = 0
    ...     tags: dict[str, str] = field(default_factory=dict)
    >>> Point(1), Point(1, y=2) == Point(1, 2)
    (Point(x=1, y=0, tags={}), True)
    >>> Point(1).tags is Point(1).tags
    False
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, TypeVar

__all__ = ["quick_init"]

T = TypeVar("T")

_FACTORY = object()  # the default of a field with a default factory: call the factory


def quick_init(cls: type[T]) -> type[T]:
    """Replace the ``__init__`` of the frozen dataclass ``cls`` (see the module docstring).
    Only plain fields are supported: a class with ``__post_init__``, ``InitVar``, keyword-only
    or ``init=False`` fields, or ``__slots__`` is refused, so that nothing is silently lost."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or not params.init:
        raise TypeError(f"quick_init takes a frozen dataclass with an __init__, not {cls.__name__}")
    if hasattr(cls, "__post_init__") or "__slots__" in cls.__dict__:
        raise TypeError(f"quick_init does not support __post_init__ or __slots__ ({cls.__name__})")
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    generated = list(inspect.signature(cls.__init__).parameters.values())[1:]
    if [p.name for p in generated] != [f.name for f in fields] or any(
        p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD for p in generated
    ):  # InitVar, keyword-only or init=False fields
        raise TypeError(f"quick_init supports plain fields only ({cls.__name__})")
    namespace: dict[str, Any] = {"_FACTORY": _FACTORY}
    signature, body = [], []
    for f in fields:
        value = f.name
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{f.name}"] = f.default
            signature.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{f.name}"] = f.default_factory
            signature.append(f"{f.name}=_FACTORY")
            value = f"_factory_{f.name}() if {f.name} is _FACTORY else {f.name}"
        else:
            signature.append(f.name)
        body.append(f"    fields[{f.name!r}] = {value}\n")
    source = f"def __init__(self, {', '.join(signature)}):\n    fields = self.__dict__\n{''.join(body)}"
    exec(source, namespace)  # as dataclasses itself builds __init__
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__  # type: ignore[misc]
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
