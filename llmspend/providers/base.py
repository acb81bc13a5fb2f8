"""The provider adapter contract.

A provider adapter is the only part of llmspend that knows a provider's wire format. It reads
a request into a :class:`Call` (what is being asked, of which model), reads the provider's
answer into an :class:`Outcome` (usage, ids, finish reasons), and reads event streams as they
pass. Everything it does is a pure function of bytes; it never sends anything itself.

Contract for implementers (first-party and third-party plugins alike):

- ``parse_request`` returns ``None`` for any request it does not recognise; such requests pass
  through the pipeline untouched and unmeasured. It must not raise.
- ``parse_response`` raises :class:`~llmspend.exceptions.ResponseParseError` for a body it
  cannot read; the pipeline then returns the body unchanged and logs one warning.
- A :class:`StreamReader` must hand on every byte the provider sent except what the adapter
  itself asked for on the caller's behalf (OpenAI's usage-only chunk when the caller did not
  request it), and must not raise on malformed events.
- Translation (mixed-provider cascades) is optional: an adapter that sets ``chat_path``
  converts its requests and answers to and from OpenAI chat-completions JSON, the common form
  (``to_``/``from_openai_chat_request``, ``to_``/``from_openai_chat_response``) and re-tells a
  whole answer as its event stream (``stream_from_answer``). Pure functions of parsed JSON;
  what one API has and the other lacks is dropped, never guessed.
- Content capture (``wrap(capture_content=True)``) is optional: ``input_content`` gives what a
  request tells the model and ``output_messages`` what an answer says, in the GenAI
  conventions' shapes (:mod:`llmspend.telemetry.content`). They run only when capture is on;
  the defaults read the chat-completions form and the outcome's text.
- Prompt rewriting (the trim stage) is optional: ``get_messages`` returns the conversation as a
  list (oldest first) in a shape ``llmspend.trim`` reads (OpenAI chat messages, Responses API
  input items, or messages of Anthropic-style content blocks), or ``None`` when the request has
  none or the adapter does not support rewriting it; such requests pass on untouched.
  ``with_messages`` puts a rewritten list back and changes nothing else;
  ``estimate_overhead_tokens`` counts what the prompt spends outside that list (tool
  definitions, top-level instructions), so a token budget covers the whole prompt.
- Server-side tools the provider bills per call, apart from tokens (web search, ...): an
  adapter counts the calls an answer made in ``Outcome.tool_calls`` (``None`` for a tool that
  ran an untold number of times) and says which a request enables, and how many calls it
  allows, in ``tool_call_limits``. A tool it counts that the price table has no fee for makes
  the call's cost unknown, never a figure short of the bill.

Adapters are registered under the ``llmspend.providers`` entry-point group.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from .._frozen import quick_init
from ..exceptions import ResponseParseError

if TYPE_CHECKING:
    from .._http import Headers, Request
    from ..exceptions import LLMSpendError
    from ..telemetry.content import InputContent

__all__ = ["Call", "Usage", "Outcome", "StreamReader", "ProviderAdapter", "ToolCallLimit", "json_object_body",
           "number_params", "token_count", "usage_count"]

#: an outcome's ``tool_calls`` when the answer used no server-side tool (shared: read-only)
NO_TOOL_CALLS: Mapping[str, int | None] = MappingProxyType({})


@quick_init  # built on every call: see llmspend._frozen
@dataclass(frozen=True)
class Call:
    """What one request asks of a provider, as far as cost and telemetry need to know."""

    provider: str  #: ``gen_ai.provider.name``, e.g. ``"openai"``
    operation: str  #: ``gen_ai.operation.name``: ``chat``, ``text_completion``, ``embeddings``
    endpoint: str  #: the API within the provider, e.g. ``"chat.completions"``, ``"responses"``
    model: str | None
    stream: bool
    server_address: str
    server_port: int
    #: ``gen_ai.request.*`` values (temperature, max_tokens, ...), keyed by attribute suffix
    params: Mapping[str, Any] = field(default_factory=dict)
    #: for streams: did the caller itself ask for usage (else the adapter may add it)
    usage_requested: bool = True
    #: the request body as parsed JSON, for stages that need more than the above
    body: Any = None

    @property
    def span_name(self) -> str:
        return f"{self.operation} {self.model}" if self.model else self.operation


@quick_init  # built on every call: see llmspend._frozen
@dataclass(frozen=True)
class Usage:
    """Token counts of one call, in the OpenTelemetry GenAI sense.

    ``input_tokens`` counts *all* input, cached reads and cache writes included (Anthropic
    reports those apart; its adapter adds them in). So uncached input is
    ``input_tokens - cache_read_tokens - cache_write_tokens``. ``output_tokens`` includes
    reasoning tokens.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    #: every cache write, whatever its lifetime
    cache_write_tokens: int = 0
    #: the part of ``cache_write_tokens`` written with a one-hour lifetime (Anthropic)
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    #: counted with a tokenizer by llmspend, not reported by the provider
    estimated: bool = False

    @property
    def uncached_input_tokens(self) -> int:
        return max(0, self.input_tokens - self.cache_read_tokens - self.cache_write_tokens)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.cache_write_1h_tokens + other.cache_write_1h_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.estimated or other.estimated,
        )


@quick_init  # built on every call: see llmspend._frozen
@dataclass(frozen=True)
class Outcome:
    """What a provider's answer says, as far as cost and telemetry need to know."""

    usage: Usage | None = None
    response_id: str | None = None
    response_model: str | None = None
    finish_reasons: tuple[str, ...] = ()
    service_tier: str | None = None
    #: where the provider says inference ran (Anthropic's ``usage.inference_geo``), for prices
    #: that depend on it
    inference_geo: str | None = None
    #: which speed served the call (Anthropic's ``usage.speed``: ``fast`` or ``standard``, the
    #: latter also when a fast request fell back), for prices that depend on it
    speed: str | None = None
    #: the generated text (all choices), for estimates and opt-in content capture
    output_text: str = ""
    #: False when a stream ended before the provider finished (caller stopped, connection lost)
    complete: bool = True
    #: an error the provider reported inside a successful HTTP response (an error event in the
    #: middle of a stream), as its ``error.type``
    error_type: str | None = None
    #: provider-specific span attributes the answer carries (e.g. server-side tool use counts)
    attributes: Mapping[str, str | bool | int | float] = field(default_factory=dict)
    #: the calls the provider made to its own (server-side) tools and bills apart from tokens,
    #: by llmspend's tool name (``web_search``, ``file_search``, ``code_execution``, ...; see
    #: docs/pricing.md); a count of ``None``: the tool ran but the answer does not say how
    #: often, so its fee cannot be known
    tool_calls: Mapping[str, int | None] = field(default_factory=dict)
    #: the answer as the GenAI conventions' output messages (one per choice), for opt-in content
    #: capture: filled only when it is on (see :meth:`ProviderAdapter.output_messages` and
    #: ``StreamReader``); None: read no further than ``output_text``
    output_messages: tuple[Mapping[str, Any], ...] | None = None
    #: the call's cost in USD as the provider reports it in its answer (OpenRouter's
    #: ``usage.cost``, Perplexity's ``usage.cost.total_cost``): what it billed, used instead of
    #: the price table
    reported_cost_usd: float | None = None

    def with_usage(self, usage: Usage) -> Outcome:
        return replace(self, usage=usage)


@dataclass(frozen=True)
class ToolCallLimit:
    """Server-side tools a request lets the provider call, and the most calls it allows them
    together (``None``: the request sets no limit), for a budget's bound on the call's cost."""

    tools: tuple[str, ...]
    max_calls: int | None


class StreamReader(Protocol):
    """Reads an event stream as it passes to the caller.

    ``feed`` runs once per chunk on the caller's path, so it should do as little as possible
    (split and keep); the parsing can wait for :meth:`outcome`. ``output_text`` of the outcome
    must be filled when it has no usage (the cost is then estimated from it) and when the
    telemetry stage set ``capture_text = True`` on the reader; otherwise it may be empty. With
    ``capture_text`` a reader may also fill the outcome's ``output_messages`` (the answer's
    parts: tool calls, one message per choice); without it, it must not spend time on them.
    """

    def feed(self, chunk: bytes) -> bytes:
        """Take the next bytes from the provider; return the bytes to hand to the caller."""
        ...

    def flush(self) -> bytes:
        """The stream ended: return any bytes still held back."""
        ...

    def outcome(self, complete: bool) -> Outcome:
        """What the events seen so far say. ``complete`` is False when the stream was cut
        short; a reader that saw the provider's own end-of-answer event may still report the
        answer complete."""
        ...


class ProviderAdapter(ABC):
    """Reads one provider's wire format. See the module docstring for the contract."""

    #: the adapter's name and default ``gen_ai.provider.name``
    name: str = ""
    #: a ``gen_ai.provider.name`` that overrides the adapter's own choice (``wrap(provider=)``)
    provider: str | None = None
    #: request headers whose values change the answer (as in HTTP's ``Vary``), lower-case: the
    #: cache keys on them. Credentials are not among them: the cache scopes by those anyway.
    vary_headers: tuple[str, ...] = ()

    def supports_client(self, client: object) -> bool:
        """Whether ``llmspend.wrap(client)`` should use this adapter for ``client``."""
        return False

    def unsupported_client(self, client: object) -> str | None:
        """Why ``client``, a client of this adapter's family that it cannot read (another
        cloud's endpoints for the same models, say), cannot be wrapped; None otherwise.
        ``wrap()`` raises ``ConfigError`` with it rather than wrap a client whose calls
        would pass unmeasured."""
        return None

    def matches(self, request: Request) -> bool:
        """Whether this adapter reads ``request`` when no adapter was chosen by the client
        (plain ``httpx`` use). The default asks :meth:`parse_request`."""
        return self.parse_request(request) is not None

    @abstractmethod
    def parse_request(self, request: Request) -> Call | None: ...

    def prepare_request(self, request: Request, call: Call) -> Request:
        """The request to send for ``call``; e.g. ask a stream for usage. Default: unchanged."""
        return request

    @abstractmethod
    def parse_response(self, call: Call, body: bytes) -> Outcome: ...

    @abstractmethod
    def stream_reader(self, call: Call, request: Request) -> StreamReader: ...

    @abstractmethod
    def estimate_input_tokens(self, call: Call) -> int:
        """Input tokens of ``call`` counted locally, for when the provider reports none."""

    # -- content capture (optional; see the module docstring) -------------------------------
    def input_content(self, call: Call) -> InputContent | None:
        """What ``call`` tells the model, for ``gen_ai.input.messages`` and
        ``gen_ai.system_instructions``; None: nothing to record. Default: a body with
        chat-completions ``messages`` (llmspend's common form), a top-level ``system`` (a string)
        as system instructions, or a plain ``prompt``/``input``."""
        from .openai_content import chat_input
        from ..telemetry.content import InputContent, prompt_messages, text_part

        body = call.body if isinstance(call.body, Mapping) else {}
        system = body.get("system")
        instructions = [text_part(system)] if isinstance(system, str) else None
        messages = body.get("messages")
        if isinstance(messages, list):
            return InputContent(messages=chat_input(messages), system_instructions=instructions)
        return InputContent(messages=prompt_messages(body.get("prompt", body.get("input"))), system_instructions=instructions)

    def output_messages(self, call: Call, body: bytes) -> list[dict[str, Any]] | None:
        """The answer ``body`` (already read into an outcome by :meth:`parse_response`) as
        ``gen_ai.output.messages``, one message per choice; None: the span gets the outcome's
        ``output_text`` as one assistant message. Called only when content capture is on."""
        return None

    # -- prompt rewriting (optional; see the module docstring) ------------------------------
    def get_messages(self, call: Call) -> list[Any] | None:
        """The conversation of ``call``, oldest first, or ``None``: nothing to rewrite."""
        return None

    def with_messages(self, request: Request, call: Call, messages: list[Any]) -> Request:
        """``request`` with its conversation replaced by ``messages``. Called only for a call
        whose :meth:`get_messages` returned a list."""
        raise NotImplementedError(f"the {self.name or type(self).__name__} adapter cannot rewrite messages")

    def estimate_overhead_tokens(self, call: Call) -> int:
        """Input tokens of ``call`` outside :meth:`get_messages`'s list, counted locally."""
        return 0

    # -- server-side tools (optional) -------------------------------------------------------
    def tool_call_limits(self, call: Call) -> tuple[ToolCallLimit, ...]:
        """The server-side tools ``call`` enables that the provider bills per call (named as
        in :attr:`Outcome.tool_calls`), with the most calls the request allows them. Default:
        none, for an API without such tools."""
        return ()

    def sdk_error(self, error: LLMSpendError) -> BaseException:
        """The exception to raise for an llmspend error (a refused budget, a prompt too long)
        raised inside the SDK's transport. Default: ``error`` itself, which the openai SDK hands
        to the caller unchanged. An SDK that turns foreign exceptions from its transport into its
        own (the anthropic SDK makes them ``APIConnectionError`` and may retry them) needs one of
        a type it lets through, still an instance of ``type(error)``."""
        return error

    def cache_key_body(self, request: Request, call: Call) -> Mapping[str, Any]:
        """The request body as the cache keys it: without what the provider reads but what
        does not change the answer (Anthropic's ``cache_control`` markers). Default: the body.
        Fields every API shares (``user``, ``stream``, ...) are left out by the cache itself."""
        return call.body  # type: ignore[no-any-return]

    def with_model(self, request: Request, model: str) -> Request:
        """The same request asking ``model`` instead (used by cascades and budgets)."""
        body = dict(request.json())
        body["model"] = model
        return request.replace(json_body=body)

    # -- translation through OpenAI chat completions (optional; see the module docstring) ----
    #: the path an SDK client of this API posts chat requests to, relative to its base URL
    #: (``None``: the adapter does not translate, so its models cannot be steps of a cascade
    #: run from another API's client)
    chat_path: str | None = None

    def to_openai_chat_request(self, call: Call) -> dict[str, Any] | None:
        """``call``'s request as an OpenAI chat-completions body, or ``None`` when it has no
        such form (an endpoint other than chat). May return ``call.body`` itself: do not change it."""
        return None

    def from_openai_chat_request(self, body: Mapping[str, Any], model: str, headers: Headers) -> dict[str, Any]:
        """A chat-completions ``body`` as this API's request for ``model``, to be sent with
        ``headers`` (which say, e.g., the API version, and so which fields it accepts)."""
        raise NotImplementedError(f"the {self.name or type(self).__name__} adapter does not translate chat requests")

    def to_openai_chat_response(self, answer: Mapping[str, Any]) -> dict[str, Any]:
        """This API's answer (parsed JSON) as an OpenAI ``chat.completion``; raises
        :class:`~llmspend.exceptions.ResponseParseError` for one it cannot read. May return
        ``answer`` itself."""
        raise NotImplementedError(f"the {self.name or type(self).__name__} adapter does not translate answers")

    def from_openai_chat_response(self, completion: Mapping[str, Any]) -> dict[str, Any]:
        """An OpenAI ``chat.completion`` as this API's answer. May return ``completion`` itself."""
        raise NotImplementedError(f"the {self.name or type(self).__name__} adapter does not translate answers")

    def stream_from_answer(self, call: Call, answer: Mapping[str, Any]) -> bytes:
        """The event stream this API sends for ``answer`` when ``call`` asks for a stream (a
        cascade re-tells an answer it had to read whole)."""
        raise NotImplementedError(f"the {self.name or type(self).__name__} adapter does not synthesise streams")


# -- helpers for adapters ------------------------------------------------------------------
def token_count(value: Any) -> int | None:
    """``value`` as a token count: a whole number >= 0, written ``12`` or ``12.0`` (a server
    that keeps numbers as doubles writes the latter); None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def usage_count(usage: Mapping[str, Any], key: str) -> int:
    """A count ``usage`` may leave out (0 then); one that is there but is not a token count
    raises :class:`ResponseParseError`: read as 0, its tokens would be priced at another rate
    or not at all, a figure short of the bill reported as exact."""
    value = usage.get(key)
    if value is None:
        return 0
    count = token_count(value)
    if count is None:
        raise ResponseParseError(f"usage {key} is not a token count")
    return count


def json_object_body(request: Request) -> dict[str, Any] | None:
    """The request body as a JSON object, or ``None`` when it is not one (never raises)."""
    try:
        body = request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def number_params(body: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """``gen_ai.request.*`` suffixes for the numeric fields of ``body`` named in ``names``
    (body key -> attribute suffix); booleans and other types are left out."""
    params: dict[str, Any] = {}
    for key, attr in names.items():
        if key in body:  # a request sets one or two of them: skip the rest without a get()
            value = body[key]
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                params[attr] = value
    return params
