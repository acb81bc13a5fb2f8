"""llmspend's own errors, raised so that the anthropic SDK lets them through.

The SDK turns any exception from its HTTP transport that is not its own into
``APIConnectionError("Connection error.")`` (and, with its retries on, tries again). A refused
budget or a prompt too long for its trim budget would reach the caller as a connection error.
Raised as an instance of a class that is both the llmspend error's class and
``anthropic.AnthropicError``, it passes through unchanged: ``except llmspend.BudgetExceededError``
catches it, with every attribute, and the SDK neither wraps nor retries it.
"""

from __future__ import annotations

from llmspend.exceptions import LLMSpendError

__all__ = ["passable"]


_CLASSES: dict[type[LLMSpendError], type[LLMSpendError]] = {}


def _passable_class(cls: type[LLMSpendError]) -> type[LLMSpendError]:
    found = _CLASSES.get(cls)
    if found is None:
        import anthropic  # only here: an error on an anthropic client's call

        # Same name and module, so a traceback reads as the llmspend error it is.
        made = type(cls.__name__, (cls, anthropic.AnthropicError), {
            "__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__,
        })
        found = _CLASSES.setdefault(cls, made)
    return found


def passable(error: LLMSpendError) -> LLMSpendError:
    """``error`` as an instance the anthropic SDK passes through (same class, attributes,
    message and traceback, and also an ``anthropic.AnthropicError``)."""
    cls = _passable_class(type(error))
    copy = cls.__new__(cls, *error.args)
    copy.__dict__.update(error.__dict__)
    copy.args = error.args
    return copy.with_traceback(error.__traceback__)
