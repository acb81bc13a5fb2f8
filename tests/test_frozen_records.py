"""The records built on every call keep dataclass behaviour under their quicker __init__."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from dataclasses import InitVar, dataclass, field

import pytest

from llmspend._frozen import quick_init
from llmspend.pricing.cost import Cost
from llmspend.providers.base import Call, Outcome, Usage


def test_defaults_factories_and_positional_arguments() -> None:
    usage = Usage(20, 2, cache_read_tokens=5)
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.estimated) == (20, 2, 5, False)
    assert usage == Usage(input_tokens=20, output_tokens=2, cache_read_tokens=5, cache_write_tokens=0)
    first, second = Outcome(), Outcome()
    assert first.attributes == {} and first.attributes is not second.attributes  # a fresh dict each
    given = {"k": 1}
    assert Outcome(attributes=given).attributes is given
    call = Call("openai", "chat", "chat.completions", "m", False, "h", 443)
    assert call.params == {} and call.usage_requested is True and call.body is None
    assert Cost(None).status == "ok" and Cost(1.0, output_usd=1.0).output_usd == 1.0


def test_still_frozen_hashable_and_replaceable() -> None:
    usage = Usage(1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        usage.input_tokens = 3  # type: ignore[misc]
    assert hash(usage) == hash(Usage(1, 2))
    assert dataclasses.replace(usage, output_tokens=5) == Usage(1, 5)
    assert Outcome(usage=usage).with_usage(Usage(3, 4)).usage == Usage(3, 4)
    cost = Cost(0.5, input_usd=0.5)
    assert pickle.loads(pickle.dumps(cost)) == cost and copy.copy(cost) == cost
    assert repr(Usage(1, 2)).startswith("Usage(input_tokens=1, output_tokens=2")


def test_missing_argument_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        Call("openai", "chat")  # type: ignore[call-arg]


def test_refuses_what_it_cannot_reproduce() -> None:
    @dataclass
    class Mutable:
        x: int

    @dataclass(frozen=True)
    class WithPostInit:
        x: int

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True)
    class WithInitVar:
        x: int
        y: InitVar[int] = 0

    @dataclass(frozen=True)
    class KeywordOnly:
        x: int = field(kw_only=True)

    @dataclass(frozen=True)
    class NotInInit:
        x: int = field(init=False, default=0)

    @dataclass(frozen=True, slots=True)
    class Slotted:
        x: int

    for cls in (Mutable, WithPostInit, WithInitVar, KeywordOnly, NotInInit, Slotted):
        with pytest.raises(TypeError):
            quick_init(cls)
