"""Helpers that keep the per-call path short do what the slower code they replace did."""

from __future__ import annotations

import codecs
import json

import pytest

from llmspend._http import Headers, Request, loads


@pytest.mark.parametrize("text", ['{"a": "é", "b": [1, 2.5, null]}', "[1, 2]", '"s"', "3", "{}", "{ }"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "utf-16", "utf-32"])
def test_loads_reads_every_encoding_json_loads_reads(text: str, encoding: str) -> None:
    data = text.encode(encoding)
    assert loads(data) == json.loads(data)


def test_loads_keeps_surrogates_and_errors_as_json_loads() -> None:
    data = '{"s": "\ud83d"}'.encode("utf-8", "surrogatepass")  # a lone surrogate, as json.loads accepts
    assert loads(data) == json.loads(data)
    for bad in (b"{", b'{"a": }', b"{\xff}", b"", codecs.BOM_UTF8):
        with pytest.raises(ValueError):
            json.loads(bad)
        with pytest.raises(ValueError):
            loads(bad)


@pytest.mark.parametrize(("url", "host", "port", "path"), [
    ("https://API.OpenAI.com/v1/chat/completions", "api.openai.com", 443, "/v1/chat/completions"),
    ("http://127.0.0.1:8000/v1/embeddings?x=1", "127.0.0.1", 8000, "/v1/embeddings"),
    ("http://[::1]:9/v1/responses", "::1", 9, "/v1/responses"),
    ("http://h", "h", 80, ""),
])
def test_url_parts_are_read_once_and_right(url: str, host: str, port: int, path: str) -> None:
    for _ in range(2):  # the second time from the memo
        request = Request("POST", url, Headers())
        assert (request.host, request.port, request.path) == (host, port, path)
        assert request.parts.geturl() == url


def test_a_port_that_is_not_a_number_still_raises_only_when_read() -> None:
    request = Request("POST", "http://h:abc/v1/chat/completions", Headers())
    assert (request.host, request.path) == ("h", "/v1/chat/completions")
    for _ in range(2):
        with pytest.raises(ValueError):
            request.port
