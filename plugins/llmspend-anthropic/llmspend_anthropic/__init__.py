"""llmspend provider plugin for the official ``anthropic`` SDK.

    import anthropic, llmspend

    client = llmspend.wrap(anthropic.Anthropic())      # or AsyncAnthropic()

llmspend finds this plugin through the ``llmspend.providers`` entry point, as it would any
third party's; nothing in llmspend's core imports it. See docs/anthropic.md.
"""

from .adapter import AnthropicAdapter

__all__ = ["AnthropicAdapter"]
__version__ = "0.1.0"
