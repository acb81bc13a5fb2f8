"""Cache keys and entries as pure functions: canonical, scoped, free of secrets; entries that
round-trip and refuse anything else."""

from __future__ import annotations

import doctest
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmspend import Headers
from llmspend.cache import disk, keys
from llmspend.cache.entry import Entry, decode_entry, encode_entry, stored_headers
from llmspend.cache.keys import cache_key, read_controls, scope_digest
from llmspend.exceptions import CorruptCacheEntryError

URL = "https://api.openai.com/v1/chat/completions"
BODY = {"model": "gpt-4o", "temperature": 0, "messages": [{"role": "user", "content": "hi"}]}


def key(body: dict[str, Any], scope: str = "s", endpoint: str = "chat.completions") -> str:
    return cache_key("openai", endpoint, URL, body, scope)


def test_docstrings_run() -> None:
    for module in (keys, disk):
        assert doctest.testmod(module).failed == 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_key_ignores_dict_order(body: dict[str, Any]) -> None:
    shuffled = dict(reversed(list(body.items())))
    assert key(body) == key(shuffled)
    assert key(body) == key(json.loads(json.dumps(body)))  # what the wire makes of it


def _meaning(value: Any) -> Any:
    """What an API reads from a JSON value: 0.0 is 0, true is not 1, key order is nothing."""
    if isinstance(value, bool) or value is None:
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", int(value)) if float(value).is_integer() else ("f", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, list):
        return ("l", [_meaning(v) for v in value])
    return ("d", sorted((k, _meaning(v)) for k, v in value.items()))


@given(json_values, json_values)
def test_same_key_exactly_when_same_meaning(a: Any, b: Any) -> None:
    assert (key({"x": a}) == key({"x": b})) == (_meaning(a) == _meaning(b))


def test_ambiguous_concatenations_differ() -> None:
    assert key({"messages": ["ab", "c"]}) != key({"messages": ["a", "bc"]})
    assert key({"a": "1"}) != key({"a": 1})
    assert key({"a": True}) != key({"a": 1})
    assert key({"a": None}) != key({"a": "n"})


def test_fields_that_do_not_change_the_answer() -> None:
    base = key(BODY)
    for extra in ({"user": "u1"}, {"metadata": {"x": "y"}}, {"store": True}, {"prompt_cache_key": "k"},
                  {"safety_identifier": "h"}, {"temperature": 0.0}):
        assert key({**BODY, **extra}) == base, extra
    for extra in ({"temperature": 0.5}, {"seed": 1}, {"tools": []}, {"response_format": {"type": "json_object"}},
                  {"max_tokens": 3}, {"model": "gpt-4o-mini"}, {"n": 2}):
        assert key({**BODY, **extra}) != base, extra
    # streams are keyed apart from reads, and with the usage chunk apart from without
    stream = key({**BODY, "stream": True})
    assert stream != base
    assert key({**BODY, "stream": True, "stream_options": {"include_usage": True}}) != stream
    assert key({**BODY, "stream": True, "stream_options": {"include_obfuscation": False}}) == stream
    # the Responses API keeps stored answers for later turns: there store matters
    assert key({**BODY, "store": False}, endpoint="responses") != key(BODY, endpoint="responses")


def test_scope_and_url_are_part_of_the_key() -> None:
    a, b = scope_digest("Bearer sk-a", None), scope_digest("Bearer sk-b", None)
    assert key(BODY, a) != key(BODY, b)
    assert scope_digest("Bearer sk-a", "team") == scope_digest("Bearer sk-b", "team")
    assert scope_digest(None, "team", "t1") != scope_digest(None, "team", "t2")
    assert scope_digest(None, None) != scope_digest("", None)
    assert cache_key("openai", "chat.completions", URL + "?api-version=1", BODY, "s") != key(BODY)
    assert cache_key("groq", "chat.completions", URL, BODY, "s") != key(BODY)


def test_secret_is_never_in_a_key_or_scope() -> None:
    secret = "sk-proj-SECRET123"
    scope = scope_digest(f"Bearer {secret}", None)
    for text in (scope, key(BODY, scope)):
        assert secret not in text and len(text) == 64 and int(text, 16) >= 0


def test_controls_and_credential_in_one_pass() -> None:
    headers = Headers([("Authorization", "Bearer sk-a"), ("X-LLMSpend-Cache", "Refresh"),
                       ("x-llmspend-cache-ttl", "90"), ("x-api-key", "other")])
    controls = read_controls(headers)
    assert (controls.mode, controls.ttl_s, controls.present, controls.error) == ("refresh", 90.0, True, None)
    assert read_controls(Headers([("Authorization", "Bearer sk-a")])).credential == "Bearer sk-a"
    assert read_controls(Headers([("api-key", "azure")])).credential == "azure"
    assert read_controls(Headers([("api-key", "azure")])).present is False
    bad = read_controls(Headers([("x-llmspend-cache-ttl", "inf")]))
    assert bad.mode == "skip" and "x-llmspend-cache-ttl" in (bad.error or "")
    assert keys.without_controls(headers).items() == (("Authorization", "Bearer sk-a"), ("x-api-key", "other"))


def test_every_credential_header_scopes_the_key() -> None:
    # Anthropic reads x-api-key before Authorization: callers sharing only one of the two are
    # different tenants, and none of them is the caller with one header alone
    def credential(*pairs: tuple[str, str]) -> str | None:
        return read_controls(Headers(pairs)).credential

    both = credential(("Authorization", "Bearer shared"), ("x-api-key", "tenant-a"))
    assert both == credential(("X-Api-Key", "tenant-a"), ("authorization", "Bearer shared"))  # order, case: the same
    others = {credential(("Authorization", "Bearer shared"), ("x-api-key", "tenant-b")),
              credential(("Authorization", "Bearer shared")), credential(("x-api-key", "tenant-a"))}
    assert both not in others and len(others) == 3
    assert len({scope_digest(c, None) for c in (both, *others)}) == 4


def test_vary_headers_are_part_of_the_key() -> None:
    def vary(*pairs: tuple[str, str]) -> tuple[tuple[str, str | None], ...]:
        return keys.vary_values(Headers([("Authorization", "k"), *pairs]), ("anthropic-version", "anthropic-beta"))

    assert vary() == (("anthropic-beta", None), ("anthropic-version", None))
    assert vary(("Anthropic-Beta", "a"), ("anthropic-beta", "b")) == (("anthropic-beta", "a, b"), ("anthropic-version", None))
    plain = cache_key("anthropic", "messages", URL, BODY, "s", vary())
    assert plain != key(BODY)  # headers named, even absent, are keyed apart from none named
    assert cache_key("openai", "chat.completions", URL, BODY, "s", ()) == key(BODY)  # nothing named: keys as before
    variants = [vary(("anthropic-version", "2023-06-01")), vary(("anthropic-version", "2026-10-21")),
                vary(("anthropic-beta", "")), vary(("anthropic-beta", "x"))]
    found = {cache_key("anthropic", "messages", URL, BODY, "s", v) for v in (vary(), *variants)}
    assert len(found) == 5


@pytest.mark.parametrize("body,chunks", [(b'{"a": "\xc3\xa9"}', None), (b"\xff\xfe binary", None),
                                         (None, (b"data: 1\n\n", b"data: [DONE]\n\n")), (None, (b"\xff", b"ok"))])
def test_entries_round_trip(body: bytes | None, chunks: tuple[bytes, ...] | None) -> None:
    entry = Entry(200, (("content-type", "application/json"),), body=body, chunks=chunks, created=5.0, cost_usd=0.25)
    assert decode_entry(encode_entry(entry)) == entry
    # what a backend may hand back instead of bytes (a memoryview-backed client, a text store)
    assert decode_entry(bytearray(encode_entry(entry))) == entry
    assert decode_entry(encode_entry(entry).decode("utf-8")) == entry


def test_a_cost_that_is_not_a_number_is_stored_as_unknown() -> None:
    entry = Entry(200, (), body=b"{}", created=5.0, cost_usd=float("nan"))
    assert decode_entry(encode_entry(entry)).cost_usd is None


def test_entries_keep_no_framing_or_cookies() -> None:
    headers = Headers([("Content-Type", "text/event-stream"), ("Content-Length", "9"), ("Set-Cookie", "sid=1"),
                       ("Content-Encoding", "gzip"), ("x-request-id", "req_1"), ("Connection", "keep-alive")])
    assert stored_headers(headers) == (("Content-Type", "text/event-stream"), ("x-request-id", "req_1"))


@pytest.mark.parametrize("data", [
    b"", b"[]", b"not json", b'{"v": 2}', b'{"v": 1, "status": 500, "created": 1, "headers": [], "body": ""}',
    b'{"v": 1, "status": 200, "created": 1, "headers": [["a"]], "body": ""}',
    b'{"v": 1, "status": 200, "created": 1, "headers": [], "chunks": [1]}',
    b'{"v": 1, "status": 200, "created": 1, "headers": []}',
    b'{"v": 1, "status": 200, "created": 1, "headers": [], "body_b64": "***"}',
    b'{"v": 1, "status": true, "created": 1, "headers": [], "body": ""}',
    b"[" * 200_000,  # json.loads raises RecursionError, not ValueError
    b'{"v": 1, "status": 200, "created": NaN, "headers": [], "body": ""}',
    b'{"v": 1, "status": 200, "created": -Infinity, "headers": [], "body": ""}',
    b'{"v": 1, "status": 200, "created": 1e400, "headers": [], "body": ""}',
    b'{"v": 1, "status": 200, "created": 1' + b"0" * 400 + b', "headers": [], "body": ""}',
    b'{"v": 1, "status": 200, "created": -5, "headers": [], "body": ""}',
    b'{"v": 1, "status": 200, "created": 1, "cost_usd": NaN, "headers": [], "body": ""}',
    b'{"v": 1, "status": 200, "created": 1, "cost_usd": Infinity, "headers": [], "body": ""}',
    b'{"v": 1, "status": 200, "created": 1, "cost_usd": -0.5, "headers": [], "body": ""}',
    b'{"v": 1, "status": 200, "created": 1, "headers": [["x-a", "b\\r\\nset-cookie: x"]], "body": ""}',
    b'{"v": 1, "status": 200, "created": 1, "headers": [["", "b"]], "body": ""}',
    b'{"v": 1, "status": 200, "created": 1, "headers": [["a", "b"], ["x\\ny", "c"]], "body": ""}',
    b'{"v": 1, "status": 200, "created": 1, "headers": [["a", "b"], ["c", "d\\u0000"]], "body": ""}',
], ids=lambda data: data[:70].decode())
def test_anything_else_is_a_corrupt_entry(data: bytes) -> None:
    with pytest.raises(CorruptCacheEntryError):
        decode_entry(data)


def test_which_headers_are_credentials() -> None:
    for name in ("authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie",
                 "ocp-apim-subscription-key", "x-litellm-api-key", "openai-organization", "openai-project",
                 "x-auth-token", "x-amz-security-token", "helicone-auth", "x-my-gateway-secret", "x-apikey"):
        assert keys.is_credential_header(name), name
    # what the openai and anthropic SDKs send on every call (none is a credential but the key),
    # and names that identify a request rather than a caller (keyed in, every call would miss)
    for name in ("accept", "content-type", "user-agent", "x-stainless-retry-count", "x-stainless-read-timeout",
                 "x-stainless-timeout", "x-stainless-package-version", "anthropic-version", "anthropic-beta",
                 "idempotency-key", "x-idempotency-key", "x-request-id", "x-llmspend-cache", "x-llmspend-cache-namespace"):
        assert not keys.is_credential_header(name), name


def test_credentials_in_any_header_scope_the_key_and_the_first_three_keep_theirs() -> None:
    def credential(*pairs: tuple[str, str]) -> str | None:
        return read_controls(Headers(pairs)).credential

    assert credential(("Authorization", "Bearer sk-a")) == "Bearer sk-a"  # entries stored before stay found
    assert credential(("Accept", "*/*"), ("Idempotency-Key", "stainless-retry-1")) is None
    scopes = {credential(("X-Goog-Api-Key", "a")), credential(("x-goog-api-key", "b")),
              credential(("Authorization", "Bearer k"), ("OpenAI-Organization", "org-a")),
              credential(("Authorization", "Bearer k"), ("OpenAI-Organization", "org-b")),
              credential(("Authorization", "Bearer k"), ("OpenAI-Organization", "org-a"), ("OpenAI-Project", "p"))}
    assert None not in scopes and len(scopes) == 5
    # the same credentials in another order or case: the same scope
    assert credential(("Cookie", "s=1"), ("X-Auth-Token", "t")) == credential(("x-auth-token", "t"), ("cookie", "s=1"))
    # what the name memo learnt does not change the answer the second time
    assert credential(("X-Goog-Api-Key", "a")) == credential(("X-Goog-Api-Key", "a"))
