"""Cache keys and per-request controls, as pure functions.

A key is the SHA-256 of a canonical form of everything that changes the answer: the
provider and endpoint, the URL the request goes to (host, path, API version), whether it
streams, the request headers the provider adapter names as changing the answer (its
``vary_headers``, like HTTP's ``Vary``: Anthropic's ``anthropic-version`` and
``anthropic-beta``), and the request body as the adapter keys it (``cache_key_body``: e.g.
without Anthropic's ``cache_control`` markers) minus the fields that only say who asked or how
the answer is delivered. Keys are scoped: the scope is a digest of every credential header the
request carries (:func:`is_credential_header`: the named ones such as ``authorization``,
``x-api-key``, ``openai-organization``, and any other whose name says it holds a secret), or of
the namespace the user chose, so one tenant's answer is never served to another. Only the final digest is ever stored; neither the key material (the prompt) nor
the credential is.

    >>> scope = scope_digest("Bearer sk-a", None)
    >>> body = {"model": "gpt-4o", "temperature": 0, "messages": [{"role": "user", "content": "hi"}]}
    >>> key = cache_key("openai", "chat.completions", "https://api.openai.com/v1/chat/completions", body, scope)
    >>> key == cache_key("openai", "chat.completions", "https://api.openai.com/v1/chat/completions",
    ...                  {**body, "temperature": 0.0, "user": "u-17"}, scope)
    True
    >>> key == cache_key("openai", "chat.completions", "https://api.openai.com/v1/chat/completions",
    ...                  body, scope_digest("Bearer sk-b", None))
    False
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._http import Headers

__all__ = [
    "CONTROL_HEADER",
    "TTL_HEADER",
    "NAMESPACE_HEADER",
    "CONTROL_HEADERS",
    "MODES",
    "CREDENTIAL_HEADERS",
    "NOT_CREDENTIAL_HEADERS",
    "is_credential_header",
    "IGNORED_FIELDS",
    "Controls",
    "read_controls",
    "without_controls",
    "scope_digest",
    "vary_values",
    "cache_key",
]

#: bump when the key material changes, so old entries are simply never found again
KEY_VERSION = 1

#: per-request control headers (stripped before the request is sent)
CONTROL_HEADER = "x-llmspend-cache"
TTL_HEADER = "x-llmspend-cache-ttl"
NAMESPACE_HEADER = "x-llmspend-cache-namespace"
CONTROL_HEADERS = (CONTROL_HEADER, TTL_HEADER, NAMESPACE_HEADER)
#: values of ``x-llmspend-cache``: neither read nor write / write but do not read / read and
#: write even when the policy would not
MODES = ("skip", "refresh", "always")

#: request headers that say who is asking, named: a credential, or the account or project that
#: the answer belongs to (OpenAI's organization and project select what a key may see)
CREDENTIAL_HEADERS = frozenset({
    "authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key",
    "ocp-apim-subscription-key", "x-litellm-api-key", "x-portkey-api-key", "helicone-auth",
    "openai-organization", "openai-project", "x-goog-user-project", "x-amz-security-token",
    "cookie", "x-auth-token", "x-access-token", "x-session-token",
})
#: names that :func:`is_credential_header`'s rule would take but that identify a request, not a
#: caller: keyed in, they would make every call a miss
NOT_CREDENTIAL_HEADERS = frozenset({"idempotency-key", "x-idempotency-key", "sec-websocket-key"})
# The rule for unnamed headers: a name that ends like a secret, or speaks of auth(entication).
_CREDENTIAL_ENDINGS = ("key", "token", "secret", "password", "credential", "credentials")
# The three headers scoped before the rule existed: alone, they keep the scope they had.
_LEGACY_CREDENTIALS = ("authorization", "x-api-key", "api-key")


def is_credential_header(name: str) -> bool:
    """Whether the (lower-case) header ``name`` can identify the caller, so that its value must
    scope the cache: one of :data:`CREDENTIAL_HEADERS`, or any name that ends in ``key``,
    ``token``, ``secret``, ``password`` or ``credential(s)`` or contains ``auth``, except
    :data:`NOT_CREDENTIAL_HEADERS`. Erring towards "credential" only costs hits; erring the
    other way would serve one tenant's answer to another."""
    if name in CREDENTIAL_HEADERS:
        return True
    if name in NOT_CREDENTIAL_HEADERS or name.startswith(CONTROL_HEADER):
        return False
    return name.endswith(_CREDENTIAL_ENDINGS) or "auth" in name


# What each header name (as sent: case included) is to read_controls, worked out once per name:
# an app sends the same few names on every call, so one dict look-up replaces lower() and the
# rule. Bounded, in case an app sends ever-new names.
_OTHER, _CONTROL, _CREDENTIAL = 0, 1, 2
_NAME_KINDS: dict[str, int] = {}
_NAME_KINDS_MAX = 4096


def _name_kind(name: str) -> int:
    lname = name.lower()
    if lname.startswith(CONTROL_HEADER):
        kind = _CONTROL
    else:
        kind = _CREDENTIAL if is_credential_header(lname) else _OTHER
    if len(_NAME_KINDS) < _NAME_KINDS_MAX:
        _NAME_KINDS[name] = kind
    return kind


#: body fields that do not change the answer: who asked (``user``, ``safety_identifier``,
#: ``metadata``), provider-side bookkeeping (``store``, ``prompt_cache_key``) and delivery
#: (``stream``, ``stream_options``: the parts of them that change the bytes are keyed apart).
IGNORED_FIELDS = frozenset(
    {"stream", "stream_options", "user", "metadata", "store", "prompt_cache_key", "safety_identifier"}
)
# The Responses API keeps stored answers for later turns (previous_response_id), so there an
# answer given with store=false cannot stand in for one asked with store=true.
_IGNORED_BY_ENDPOINT = {"responses": IGNORED_FIELDS - {"store"}}


@dataclass(frozen=True, slots=True)
class Controls:
    """What a request's headers say to the cache."""

    #: ``x-llmspend-cache``: one of :data:`MODES`, or None for the configured policy
    mode: str | None = None
    #: ``x-llmspend-cache-ttl``: seconds to keep this answer, or None for the default
    ttl_s: float | None = None
    #: ``x-llmspend-cache-namespace``: a sub-scope (a tenant within the app), or None
    namespace: str | None = None
    #: the credential header's value (hashed into the scope, never stored)
    credential: str | None = None
    #: whether any control header was sent (they are stripped before sending)
    present: bool = False
    #: why a control header could not be read (the call then skips the cache)
    error: str | None = None


def read_controls(headers: Headers) -> Controls:
    """Read the control headers and the credentials in one pass over ``headers``."""
    mode = ttl = namespace = unknown = None
    credentials: list[tuple[str, str]] = []
    present = False
    kinds = _NAME_KINDS
    for name, value in headers.items():
        kind = kinds.get(name)
        if kind is None:
            kind = _name_kind(name)
        if not kind:  # most headers: x-stainless-*, accept, content-type, user-agent, ...
            continue
        lname = name.lower()
        if kind == _CREDENTIAL:
            credentials.append((lname, value))
            continue
        present = True
        if lname == CONTROL_HEADER:
            mode = value
        elif lname == TTL_HEADER:
            ttl = value
        elif lname == NAMESPACE_HEADER:
            namespace = value
        else:
            unknown = name
    credential = _credential(credentials) if credentials else None
    if not present:
        return Controls(credential=credential)
    error = None
    if mode is not None:
        mode = mode.strip().lower()
        if mode not in MODES:
            error = f"{CONTROL_HEADER}: {mode!r} is not one of {', '.join(MODES)}"
            mode = "skip"
    ttl_s = None
    if ttl is not None:
        try:
            ttl_s = float(ttl)
        except ValueError:
            ttl_s = math.nan
        if not (math.isfinite(ttl_s) and ttl_s > 0):
            error = f"{TTL_HEADER}: {ttl!r} is not a number of seconds > 0"
            mode, ttl_s = "skip", None
    if namespace is not None and not namespace.strip():
        error, mode, namespace = f"{NAMESPACE_HEADER} is empty", "skip", None
    if unknown is not None:
        error, mode = f"unknown header {unknown!r}; known: {', '.join(CONTROL_HEADERS)}", "skip"
    return Controls(mode, ttl_s, namespace, credential, present=True, error=error)


def _credential(found: list[tuple[str, str]]) -> str:
    """What identifies the caller: every credential header, by name and value, in a canonical
    order. Which one the provider (or a proxy in front of it) reads is its own choice (Anthropic
    reads ``x-api-key`` before ``authorization``), so two callers that share any one of them
    but not all must not share a scope. One of the first three scoped headers alone is its
    value, as before, so the entries stored under it stay found."""
    if len(found) == 1 and found[0][0] in _LEGACY_CREDENTIALS:
        return found[0][1]
    return "\0".join(f"{name}\0{value}" for name, value in sorted(found))


def without_controls(headers: Headers) -> Headers:
    """``headers`` without any ``x-llmspend-cache*`` header (they are for llmspend only)."""
    return Headers(kv for kv in headers.items() if not kv[0].lower().startswith(CONTROL_HEADER))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@functools.lru_cache(maxsize=1024)  # an app has few credentials and namespaces: hash each once
def scope_digest(credential: str | None, namespace: str | None, sub_namespace: str | None = None) -> str:
    """The scope a key lives in: the user's ``namespace`` if set (so rotating an API key keeps
    the cache), else the credential; a per-request ``sub_namespace`` narrows either."""
    if namespace is not None:
        base = "namespace\0" + namespace
    elif credential is not None:
        base = "credential\0" + _digest(credential)
    else:
        base = "anonymous"
    if sub_namespace is not None:
        base += "\0sub\0" + sub_namespace
    return _digest(base)


def _canonical(value: Any, out: list[bytes]) -> None:
    """Append ``value`` in a canonical, unambiguous form: dict keys sorted, every string
    length-prefixed, ``0.0`` the same as ``0`` (as an API reads them). Cheaper than canonical
    JSON text: long prompts are hashed as they are, not escaped first."""
    kind = type(value)
    if kind is str:
        data = value.encode("utf-8", "surrogatepass")
        out += (b"s%d:" % len(data), data)
    elif kind is dict:
        out.append(b"{%d:" % len(value))
        for key in sorted(value):
            item = value[key]
            data = key.encode("utf-8", "surrogatepass")
            out += (b"s%d:" % len(data), data)
            if type(item) is str:  # the usual case, without a call
                data = item.encode("utf-8", "surrogatepass")
                out += (b"s%d:" % len(data), data)
            else:
                _canonical(item, out)
    elif kind is list or kind is tuple:
        out.append(b"[%d:" % len(value))
        for item in value:
            _canonical(item, out)
    elif value is None or kind is bool:
        out.append(b"n" if value is None else b"t" if value else b"f")
    elif kind is int:
        out.append(b"i%d;" % value)
    elif kind is float:
        out.append(b"i%d;" % value if value.is_integer() else b"d%r;" % value)
    else:
        raise TypeError(f"cannot key a {kind.__name__}")


def vary_values(headers: Headers, names: Sequence[str]) -> tuple[tuple[str, str | None], ...]:
    """``(name, value)`` of each header in ``names`` (lower-cased), repeated values joined with
    ``", "`` in the order sent, ``None`` when absent (which keys apart from an empty value)."""
    wanted: dict[str, list[str]] = {name.lower(): [] for name in names}
    for key, value in headers.items():
        found = wanted.get(key.lower())
        if found is not None:
            found.append(value)
    return tuple((name, ", ".join(values) if values else None) for name, values in sorted(wanted.items()))


def cache_key(
    provider: str,
    endpoint: str,
    url: str,
    body: Mapping[str, Any],
    scope: str,
    vary: Sequence[tuple[str, str | None]] = (),
) -> str:
    """The hex SHA-256 key of a request, scoped by ``scope`` (see :func:`scope_digest`);
    ``vary`` are the request headers that change the answer (:func:`vary_values`)."""
    ignored = _IGNORED_BY_ENDPOINT.get(endpoint, IGNORED_FIELDS)
    stream = body.get("stream") is True
    options = body.get("stream_options")
    # A stream with the usage chunk is different bytes from one without: key them apart.
    stream_usage = stream and isinstance(options, Mapping) and options.get("include_usage") is True
    parts = [b"%d\0%s\0%s\0%s\0%s\0%d%d\0" % (
        KEY_VERSION, scope.encode(), provider.encode(), endpoint.encode(), url.encode(), stream, stream_usage)]
    if vary:
        # Marked "h", where the body's canonical form starts with "{": keys without headers
        # (every OpenAI-compatible request) keep the bytes, and so the entries, they had.
        parts.append(b"h")
        _canonical([list(pair) for pair in vary], parts)
    _canonical({k: v for k, v in body.items() if k not in ignored}, parts)
    return hashlib.sha256(b"".join(parts)).hexdigest()
