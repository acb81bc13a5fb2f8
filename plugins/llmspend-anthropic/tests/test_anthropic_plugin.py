"""The plugin is found through its entry point, as a third party's would be; the core does not
import it; with plugin autoload off, wrapping an Anthropic client fails with a clear message."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import anthropic
import openai
import pytest
from helpers_anthropic import API_KEY

import llmspend
from llmspend import plugins
from llmspend_anthropic import AnthropicAdapter


@pytest.fixture
def fresh_plugins() -> Iterator[None]:
    plugins.reload()
    yield
    plugins.reload()


def test_found_through_the_entry_point(fresh_plugins: None) -> None:
    (ep,) = [ep for ep in entry_points(group=plugins.PROVIDERS_GROUP) if ep.name == "anthropic"]
    assert ep.value == "llmspend_anthropic:AnthropicAdapter"
    assert ep.dist is not None and ep.dist.name == "llmspend-anthropic"
    adapters = plugins.provider_adapters()
    assert isinstance(adapters[0], AnthropicAdapter)  # plugins before the generic adapter
    assert adapters[-1].name == "openai"


def test_autoload_off_gives_a_clear_error(fresh_plugins: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugins.AUTOLOAD_ENV, "1")
    plugins.reload()
    with pytest.raises(llmspend.ConfigError, match="pip install llmspend-anthropic"):
        llmspend.wrap(anthropic.Anthropic(api_key=API_KEY))
    # an explicit adapter still works without autoload
    client = llmspend.wrap(anthropic.Anthropic(api_key=API_KEY), provider=AnthropicAdapter())
    assert isinstance(client, anthropic.Anthropic)


def test_claims_only_messages_api_clients() -> None:
    adapter = AnthropicAdapter()
    assert adapter.supports_client(anthropic.Anthropic(api_key=API_KEY))
    assert adapter.supports_client(anthropic.AsyncAnthropic(api_key=API_KEY))
    assert not adapter.supports_client(openai.OpenAI(api_key="sk-x"))
    # Microsoft Foundry's client is an Anthropic subclass on the same Messages API
    assert adapter.supports_client(anthropic.AnthropicFoundry(api_key=API_KEY, base_url="https://x.services.ai.azure.com/anthropic"))
    # Bedrock speaks another wire format (the model in the URL): not this adapter's
    bedrock = anthropic.AnthropicBedrock(aws_region="us-east-1", aws_access_key="x", aws_secret_key="y")
    assert not adapter.supports_client(bedrock)
    with pytest.raises(llmspend.ConfigError, match=r"AnthropicBedrock \(Amazon Bedrock\)"):
        llmspend.wrap(bedrock)


def test_core_does_not_import_the_plugin_and_the_plugin_not_the_sdk() -> None:
    """No module of the core imports the plugin when it loads (the demo imports it inside its
    section, when run), and loading the plugin does not import the SDK."""
    root = Path(llmspend.__file__).parent
    imports = re.compile(r"^(import|from)\s+llmspend_anthropic\b", re.MULTILINE)  # at module level
    assert not [p for p in root.rglob("*.py") if imports.search(p.read_text())]
    code = ("import sys, llmspend; assert 'llmspend_anthropic' not in sys.modules; "
            "from llmspend import plugins; plugins.provider_adapters(); "
            "print('llmspend_anthropic' in sys.modules, 'anthropic' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != plugins.AUTOLOAD_ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.split() == ["True", "False"]  # loaded as a plugin, without importing the SDK
