"""Chat request bodies in and out of a batch: which requests may be merged, the merged body,
and the plain chat completion each caller gets back. Pure functions over JSON bodies
(OpenAI chat completions format).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..providers.base import Usage
from .prompt import BatchFormat, question_tag, split_question

__all__ = [
    "HEADER",
    "mergeable",
    "bounded",
    "group_key",
    "merged_body",
    "answer_completion",
    "usage_json",
    "add_usage",
    "scale_cost",
    "COST_KEYS",
    "question_line",
]

#: the per-call header that marks a call for batching (``on``) or against it (``off``)
HEADER = "x-llmspend-batch"

BOUND_KEYS = ("max_completion_tokens", "max_tokens")
# Tokens allowed per answer on top of the callers' own bounds, for the "A[i]: " tags.
TAG_ALLOWANCE = 8

# Body keys whose presence makes a request impossible to merge: tools and structured output
# shape the whole reply, logprobs and predictions are per request, and a stop sequence ends
# the whole reply where it should end one answer.
_UNMERGEABLE_KEYS = ("tools", "functions", "tool_choice", "function_call", "logprobs", "top_logprobs",
                     "prediction", "audio", "modalities", "parallel_tool_calls", "stop")


# A line of a question that reads like a tag of the batched prompt ("Q[2]: ...", "A[1]: ...")
# would split it into two questions, or pass for another caller's answer.
_TAG_LINE = re.compile(r"^[ \t>*_]*[QA][ \t]*\[[ \t]*\d+[ \t]*\]", re.MULTILINE)


def mergeable(body: Any) -> bool:
    """Whether a chat request *can* be answered from a batched prompt at all: one plain-text
    answer (no tools, no structured output, n = 1, not streamed) to a final user question
    with no line that reads like a ``Q[i]`` or ``A[i]`` tag."""
    if not isinstance(body, Mapping):
        return False
    if body.get("stream") or body.get("n", 1) not in (1, None):
        return False
    if any(body.get(key) for key in _UNMERGEABLE_KEYS):
        return False
    fmt = body.get("response_format")
    if fmt and not (isinstance(fmt, Mapping) and fmt.get("type") == "text"):
        return False
    split = split_question(body.get("messages"))
    return split is not None and _TAG_LINE.search(split[1]) is None


def bounded(body: Mapping[str, Any]) -> bool:
    """Whether the request caps its answer's length (``max_tokens`` / ``max_completion_tokens``)."""
    return any(isinstance(body.get(k), int) and not isinstance(body.get(k), bool) for k in BOUND_KEYS)


def group_key(body: Mapping[str, Any], headers: Sequence[tuple[str, str]]) -> str:
    """Requests with the same key may share one prompt: same model, same prefix messages,
    same parameters and the same credentials and headers. The key is a digest, so no
    credential is kept in it."""
    prefix, _ = split_question(body.get("messages")) or ([], "")
    rest = {k: v for k, v in body.items() if k not in ("messages", *BOUND_KEYS)}
    # Mixing capped and uncapped requests would leave the merged request uncapped.
    rest["__bound__"] = [k for k in BOUND_KEYS if k in body]
    material = json.dumps([prefix, rest, sorted(headers)], sort_keys=True, default=str)
    return hashlib.sha256(material.encode()).hexdigest()


def merged_body(bodies: Sequence[Mapping[str, Any]], fmt: BatchFormat) -> dict[str, Any]:
    """The one request that asks every question of ``bodies`` (which share a group key)."""
    first = bodies[0]
    prefix, _ = split_question(first["messages"]) or ([], "")
    questions = [split_question(b["messages"])[1] for b in bodies]  # type: ignore[index]
    merged = {k: v for k, v in first.items() if k != "messages"}
    merged["messages"] = [*prefix, {"role": "user", "content": fmt.build(questions)}]
    for key in BOUND_KEYS:
        bounds = [b.get(key) for b in bodies]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in bounds):
            merged[key] = sum(bounds) + TAG_ALLOWANCE * len(bodies)  # type: ignore[arg-type]
        else:
            merged.pop(key, None)
    return merged


def question_line(index: int, question: str) -> str:
    """The text one question adds to the merged prompt (for counting its own tokens)."""
    return f"{question_tag(index)}{question.strip()}\n"


def usage_json(usage: Usage) -> dict[str, Any]:
    """``usage`` in the chat completions format."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


#: usage fields in which a provider states what a call cost (OpenRouter's ``cost``, with
#: ``cost_details`` and ``is_byok``; Perplexity's ``cost`` object)
COST_KEYS = ("cost", "cost_details", "is_byok")


def scale_cost(fields: Mapping[str, Any], fraction: float) -> dict[str, Any]:
    """The cost ``fields`` of a usage object (:data:`COST_KEYS`) with every amount in them
    multiplied by ``fraction``, in the provider's own shape."""
    return {k: _scaled(v, fraction) for k, v in fields.items()}


def _scaled(value: Any, fraction: float) -> Any:
    if isinstance(value, Mapping):
        return {k: _scaled(v, fraction) for k, v in value.items()}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value * fraction
    return value


def _summed(a: Any, b: Any) -> Any:
    """Two cost fields of the same shape added up (an amount missing on one side is none)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return {k: _summed(a.get(k), b.get(k)) for k in {**a, **b}}
    numbers = [v for v in (a, b) if isinstance(v, int | float) and not isinstance(v, bool)]
    if numbers and all(v is None or v in numbers for v in (a, b)):
        return sum(numbers)
    return a if a is not None else b


def answer_completion(merged: Mapping[str, Any], index: int, answer: str, usage: Usage | None,
                      model: str | None = None, cost: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The chat completion one caller gets: the merged response's metadata (``model`` when
    it names none), its own answer and its share of the usage (none when none was reported),
    with ``cost``, its share of a cost the provider reported (:func:`scale_cost`), in it."""
    rid = merged.get("id")
    body: dict[str, Any] = {
        "id": f"{rid}-{index}" if isinstance(rid, str) else f"chatcmpl-batch-{index}",
        "object": "chat.completion",
        "created": merged.get("created") if isinstance(merged.get("created"), int) else int(time.time()),
        "model": merged.get("model") if isinstance(merged.get("model"), str) else model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer, "refusal": None},
            "finish_reason": "stop",
            "logprobs": None,
        }],
    }
    for key in ("service_tier", "system_fingerprint"):
        if key in merged:
            body[key] = merged[key]
    if usage is not None:
        body["usage"] = {**usage_json(usage), **(cost or {})}
    return body


def add_usage(body: Mapping[str, Any], extra: Usage, extra_cost: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``body`` (a chat completion with usage) with ``extra`` tokens added to its usage, and
    ``extra_cost`` (their part of a cost the provider reported) to the cost it reports."""
    usage = dict(body["usage"])
    usage["prompt_tokens"] = int(usage.get("prompt_tokens") or 0) + extra.input_tokens
    usage["completion_tokens"] = int(usage.get("completion_tokens") or 0) + extra.output_tokens
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    details = dict(usage.get("prompt_tokens_details") or {})
    details["cached_tokens"] = int(details.get("cached_tokens") or 0) + extra.cache_read_tokens
    usage["prompt_tokens_details"] = details
    out_details = dict(usage.get("completion_tokens_details") or {})
    out_details["reasoning_tokens"] = int(out_details.get("reasoning_tokens") or 0) + extra.reasoning_tokens
    usage["completion_tokens_details"] = out_details
    # a cost the provider reported (OpenRouter's) was for the tokens before these were added:
    # it stands only with theirs added to it
    own = {k: usage.pop(k) for k in COST_KEYS if k in usage}
    if extra_cost and "cost" in own and "cost" in extra_cost:
        usage.update({k: _summed(own.get(k), extra_cost.get(k)) for k in COST_KEYS if k in own or k in extra_cost})
    return {**body, "usage": usage}
