"""Secrets out of text that llmspend puts on spans and in logs.

An error's message may quote what it failed on: an HTTP library rejecting a header value
quotes the value (a key read from a file keeps its trailing newline, and h11 refuses it), a
connection error may quote a URL. llmspend records such messages to say why a stage failed
open, so they pass through :func:`redact` first: the credential values it knows, and anything
shaped like a bearer token or a provider key, become ``***``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["redact", "error_text", "CREDENTIAL_HEADER_NAMES"]

#: headers whose values are credentials for the providers llmspend speaks to
CREDENTIAL_HEADER_NAMES = frozenset({
    "authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key",
    "ocp-apim-subscription-key",
})

_SHAPES = re.compile(
    r"\b([Bb]earer|BEARER|Basic)(\s+)[^\s'\"\\,;]{8,}"  # an Authorization value (a token, not a word)
    r"|\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{8,}"  # OpenAI, Anthropic and similar keys
    r"|\bAIza[0-9A-Za-z_\-]{20,}"  # Google API keys
    r"|([?&](?:key|api[_-]?key|token|access_token|password)=)[^&\s'\"]+"  # secrets in a query string
)


def _mask(match: re.Match[str]) -> str:
    if match.group(1):
        return f"{match.group(1)}{match.group(2)}***"
    if match.group(3):
        return f"{match.group(3)}***"
    return "***"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every one of ``secrets`` (and its token after a scheme such as
    ``Bearer``) and anything shaped like a credential replaced by ``***``."""
    for secret in secrets:
        for value in {secret.strip(), secret.strip().rpartition(" ")[2]}:
            if len(value) >= 8:  # shorter would mask ordinary words
                text = text.replace(value, "***")
    return _SHAPES.sub(_mask, text)


def error_text(exc: BaseException, secrets: Iterable[str] = (), *, limit: int = 300) -> str:
    """``"Type: message"`` for a span attribute or a log line, redacted and cut to ``limit``."""
    return redact(f"{type(exc).__name__}: {exc}", secrets)[:limit]
