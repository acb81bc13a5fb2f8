"""Entry-point plugins: found as a third party's would be, validated, and switchable off."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

import llmspend
from llmspend import plugins
from llmspend.testing import FakeLLMServer

from .conftest import API_KEY, Spans

PLUGIN_MODULE = '''
import llmspend
from llmspend import Stage, StageSpec


class HeaderStage(Stage):
    name = "team_header"

    def __init__(self, team):
        self.team = team

    def _with_header(self, request):
        return request.replace(headers=request.headers.set("x-team", self.team))

    def handle(self, request, call_next):
        return call_next(self._with_header(request))

    async def ahandle(self, request, call_next):
        return await call_next(self._with_header(request))


SPEC = StageSpec(option="team", order=350, build=lambda value, ctx: HeaderStage(value), doc="tag requests with a team")


class EchoAdapter(llmspend.OpenAIAdapter):
    name = "echo"

    def supports_client(self, client):
        return getattr(client, "_echo", False)
'''


def _install_dist(root: Path, name: str, entry_points: str, module: str) -> None:
    dist = root / f"{name}-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    (root / f"{name}.py").write_text(module)


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.delenv(plugins.AUTOLOAD_ENV, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.reload()
    yield tmp_path
    plugins.reload()


def test_stage_plugin_found_through_entry_points(plugin_dir: Path, server: FakeLLMServer, spans: Spans) -> None:
    _install_dist(plugin_dir, "llmspend_teamplug", """
        [llmspend.stages]
        team = llmspend_teamplug:SPEC
        [llmspend.providers]
        echo = llmspend_teamplug:EchoAdapter
    """, PLUGIN_MODULE)
    assert "team" in llmspend.known_options()
    assert any(a.name == "echo" for a in plugins.provider_adapters())
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider, team="search")
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert {k.lower(): v for k, v in server.requests[-1].headers.items()}["x-team"] == "search"
    assert spans.one().attributes["llmspend.cost.usd"] > 0  # type: ignore[index]


def test_autoload_can_be_switched_off(plugin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_dist(plugin_dir, "llmspend_teamplug", "[llmspend.stages]\nteam = llmspend_teamplug:SPEC\n", PLUGIN_MODULE)
    monkeypatch.setenv(plugins.AUTOLOAD_ENV, "1")
    plugins.reload()
    assert "team" not in llmspend.known_options()
    with pytest.raises(llmspend.ConfigError, match="unknown option 'team'"):
        llmspend.wrap(openai.OpenAI(api_key=API_KEY), team="search")
    # built-ins still work
    assert llmspend.wrap(openai.OpenAI(api_key=API_KEY), retry=False)


def test_broken_plugin_is_named_in_the_error(plugin_dir: Path) -> None:
    _install_dist(plugin_dir, "llmspend_broken", "[llmspend.stages]\noops = llmspend_missing_module:SPEC\n", "")
    with pytest.raises(llmspend.PluginError, match=r"plugin 'oops' \(llmspend_missing_module:SPEC\) from llmspend_broken 0.1.*failed to load"):
        llmspend.known_options()


def test_wrong_kind_of_plugin_is_rejected(plugin_dir: Path) -> None:
    _install_dist(plugin_dir, "llmspend_wrong", "[llmspend.providers]\nwrong = llmspend_wrong:THING\n", "THING = 42\n")
    with pytest.raises(llmspend.PluginError, match="not a llmspend.providers.base.ProviderAdapter"):
        plugins.provider_adapters()


@pytest.mark.parametrize("option", ["retry", "prices", "provider", "tracer_provider", "meter_provider", "capture_content"])
def test_plugin_cannot_take_a_builtin_option(plugin_dir: Path, option: str) -> None:
    """A stage option or one that configures the whole pipeline: either way the user's value
    would reach the plugin instead of where the user meant it."""
    module = PLUGIN_MODULE + f"\nBAD = StageSpec(option={option!r}, order=1, build=lambda v, c: None)\n"
    name = f"llmspend_clash_{option}"  # a module of its own per case: imports are cached
    _install_dist(plugin_dir, name, f"[llmspend.stages]\nclash = {name}:BAD\n", module)
    with pytest.raises(llmspend.PluginError, match=f"wants the wrap\\(\\) option '{option}', which is already taken"):
        plugins.stage_specs()


def test_sync_only_check_for_async_only_stages() -> None:
    class AsyncOnly(llmspend.Stage):
        name = "batchish"
        supports_sync = False

    with pytest.raises(llmspend.ConfigError, match="only with async clients"):
        llmspend.Pipeline([AsyncOnly()], plugins.provider_adapters(), is_async=False)
