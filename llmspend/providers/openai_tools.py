"""OpenAI's own tools, which it runs and bills per call apart from tokens: which an answer
called, and which a request enables (for a budget's bound).

The Responses API reports each call as an item of the answer's ``output`` (in a stream, in
the final ``response.completed`` event's response, and one ``response.output_item.done`` event
each). OpenAI's pricing page (developers.openai.com/api/docs/pricing, "Tools") bills:

- ``web_search_call`` items per call, at a fee that depends on the tool's version (``web_search``
  or ``web_search_preview``, read from the tools the response echoes, else the request's) and,
  for the preview, on the model; the web search guide says "Search actions incur a tool call
  cost", so an item whose action is ``open_page`` or ``find_in_page`` is not counted (one that
  says no action is). A request that enables both versions is counted as the preview, whose fee
  is the higher or the same on every model: an upper bound.
- ``file_search_call`` items per call (Responses API only).
- Code Interpreter and hosted shell containers by the 20-minute session, and image generation
  at an image model's rates: no fee per call can say what one answer cost, so their calls are
  counted under names the price table has no fee for (``code_interpreter``, ``shell``,
  ``image_generation``) and such an answer's cost is unknown.

Chat Completions' search models (``gpt-4o-search-preview``, ``gpt-5-search-api``, or any
request with ``web_search_options``) search on every request and are billed the web search
fee per search, but the answer does not say how many searches it made: their count is unknown.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .base import NO_TOOL_CALLS, Call, ToolCallLimit

__all__ = ["WEB_SEARCH", "WEB_SEARCH_PREVIEW", "chat_tool_calls", "responses_tool_calls", "tool_call_limits"]

WEB_SEARCH = "web_search"
WEB_SEARCH_PREVIEW = "web_search_preview"
FILE_SEARCH = "file_search"
CODE_INTERPRETER = "code_interpreter"
IMAGE_GENERATION = "image_generation"
SHELL = "shell"

# output item type -> llmspend's tool name (web search and shell are decided apart)
_ITEM_TOOLS = {
    "file_search_call": FILE_SEARCH,
    "code_interpreter_call": CODE_INTERPRETER,
    "image_generation_call": IMAGE_GENERATION,
}
# request tool type -> llmspend's tool name
_REQUEST_TOOLS = {"file_search": FILE_SEARCH, "code_interpreter": CODE_INTERPRETER, "image_generation": IMAGE_GENERATION}

_SEARCH_MODEL = re.compile(r"-search-(?:preview|api)(?:-|$)")


def _types(tools: Any) -> list[str]:
    return [t["type"] for t in tools if isinstance(t, Mapping) and isinstance(t.get("type"), str)] \
        if isinstance(tools, list) else []


def _web_search_names(tools: Any) -> set[str]:
    """The web search versions ``tools`` enables (``web_search_2025_08_26`` is ``web_search``)."""
    return {WEB_SEARCH_PREVIEW if kind.startswith(WEB_SEARCH_PREVIEW) else WEB_SEARCH
            for kind in _types(tools) if kind.startswith(WEB_SEARCH)}


def _hosted_shell(tools: Any) -> bool:
    """Whether ``tools`` has a shell tool that runs in OpenAI's containers (not the caller's)."""
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, Mapping) and tool.get("type") == SHELL:
            environment = tool.get("environment")
            kind = environment.get("type") if isinstance(environment, Mapping) else None
            if isinstance(kind, str) and kind.startswith("container"):
                return True
    return False


def _billed_search(item: Mapping[str, Any]) -> bool:
    action = item.get("action")
    kind = action.get("type") if isinstance(action, Mapping) else None
    return kind is None or kind == "search"


def responses_tool_calls(items: Iterable[Any], tools: Any) -> Mapping[str, int | None]:
    """The billed tool calls among a Responses answer's output ``items``; ``tools`` are the
    tools the answer (else its request) lists, which say the web search version."""
    counts: dict[str, int] = {}
    web_search: str | None = None
    for item in items:
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind == "web_search_call":
            if not _billed_search(item):
                continue
            if web_search is None:
                web_search = WEB_SEARCH if _web_search_names(tools) == {WEB_SEARCH} else WEB_SEARCH_PREVIEW
            name: str | None = web_search
        elif kind == "shell_call":
            environment = item.get("environment")
            where = environment.get("type") if isinstance(environment, Mapping) else None
            hosted = where == "container_reference" or (where is None and _hosted_shell(tools))
            name = SHELL if hosted else None
        else:
            name = _ITEM_TOOLS.get(kind) if isinstance(kind, str) else None
        if name is not None:
            counts[name] = counts.get(name, 0) + 1
    return counts or NO_TOOL_CALLS


@functools.lru_cache(maxsize=256)  # on every chat call's path; a client asks a handful of models
def _search_model(model: str) -> bool:
    return _SEARCH_MODEL.search(model) is not None


def _search_chat(call: Call) -> bool:
    body = call.body if isinstance(call.body, Mapping) else {}
    return "web_search_options" in body or (call.model is not None and _search_model(call.model))


def chat_tool_calls(call: Call) -> Mapping[str, int | None]:
    """A chat completion's tool calls: a search model's web searches, in a number it does not say."""
    return {WEB_SEARCH: None} if _search_chat(call) else NO_TOOL_CALLS


def tool_call_limits(call: Call) -> tuple[ToolCallLimit, ...]:
    """The billed tools ``call`` enables, with the most calls the request allows them."""
    body = call.body if isinstance(call.body, Mapping) else {}
    if call.endpoint == "chat.completions":
        return (ToolCallLimit((WEB_SEARCH,), None),) if _search_chat(call) else ()
    if call.endpoint != "responses":
        return ()
    tools = body.get("tools")
    enabled = _web_search_names(tools) | {_REQUEST_TOOLS[t] for t in _types(tools) if t in _REQUEST_TOOLS}
    if _hosted_shell(tools):
        enabled.add(SHELL)
    if not enabled:
        return ()
    # "The maximum number of total calls to built-in tools that can be processed in a
    # response ... across all built-in tool calls, not per individual tool" (API reference)
    limit = body.get("max_tool_calls")
    max_calls = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0 else None
    return (ToolCallLimit(tuple(sorted(enabled)), max_calls),)
