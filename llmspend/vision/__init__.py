"""Image input tokens, estimated offline by the providers' published rules.

A request's text is counted by a tokenizer (:mod:`llmspend.tokens`); its images by the rules
in :mod:`llmspend.vision.rules`, each sized from its header bytes (:mod:`llmspend.vision.size`)
or, when the size cannot be known offline (a URL, a file id), bounded by the most the rule can
bill. The budget stage and the trim stage count images through these. See docs/trim.md,
"Images".

    >>> from llmspend.vision import openai_image_tokens
    >>> openai_image_tokens("gpt-4o", (1024, 1024), "high")   # the guide's worked example
    765
"""

from .parts import content_image_tokens, item_image_tokens
from .rules import anthropic_image_tokens, openai_image_tokens
from .size import base64_image_size, data_url_size, image_size

__all__ = [
    "content_image_tokens",
    "item_image_tokens",
    "openai_image_tokens",
    "anthropic_image_tokens",
    "image_size",
    "base64_image_size",
    "data_url_size",
]
