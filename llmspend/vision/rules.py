"""How many input tokens a provider bills for one image: the providers' published rules.

Every figure here is from the provider's own page (quoted in docs/trim.md, "Images"); a model
whose rule is not published there gets the most expensive rule llmspend knows for that
provider (for OpenAI, leaving out GPT-4o-mini's, which is scaled to that one model's token
price), so a budget reserves too much rather than too little. A size of ``None`` (an image
given by URL or file id, or data that cannot be read) gets the largest count the rule can give
at that detail level: an upper bound, never a guess.

OpenAI, "Images and vision" guide, section "Calculating costs"
(https://developers.openai.com/api/docs/guides/images-vision#calculating-costs):

- Tile models (GPT-4o, GPT-4.1, GPT-4.5, GPT-4o-mini, o1, o1-pro, o3, computer-use-preview,
  GPT-5): ``"detail": "low"`` costs the model's base tokens. ``"high"``: scale to fit in a
  2048 x 2048 square, then so that the shortest side is 768px, count the 512px tiles that cover
  it; tokens = base + tiles x tile tokens. Base/tile: 4o, 4.1, 4.5: 85/170; 4o-mini: 2833/5667;
  o1, o1-pro, o3: 75/150; computer-use-preview: 65/129; gpt-5, gpt-5-chat-latest: 70/140.
  Worked examples: 1024 x 1024 high on gpt-4o = 765; 2048 x 4096 high = 1105. Only a downscale:
  an image already inside both limits keeps its size (a 128 x 64 image is one tile). ``"auto"``
  lets the model choose low or high, so it is bounded by high; ``"original"`` (a detail level
  of newer models) is counted as high for these models.
- Patch models (GPT-4.1-mini, GPT-4.1-nano, o4-mini, GPT-5-mini, GPT-5-nano): count the 32px
  patches covering the image, ceil(w/32) x ceil(h/32); over 1536, the image is scaled down
  (shrink factor sqrt(32^2 x 1536 / (w x h)), then again so the width or height fills a whole
  number of patches) and the count is capped at 1536; tokens = patches x the model's multiplier:
  gpt-4.1-mini 1.62, gpt-4.1-nano 2.46, o4-mini 1.72, gpt-5-mini 1.62, gpt-5-nano 2.46.
  Worked examples: 1024 x 1024 = 1024 patches; 1800 x 2400 = 1452 patches. The guide gives no
  ``detail`` rule for these models (users measured ``"low"`` to change nothing), so every
  detail level is counted by patches. Fractional tokens are rounded up.

Anthropic, "Vision" guide (https://docs.claude.com/en/docs/build-with-claude/vision, "Evaluate
image size" and "Calculate image costs"): an image whose long edge is over 1568px, or that is
over about 1,600 tokens, is scaled down preserving its aspect ratio; tokens = width x height /
750. Worked examples: 200 x 200 ~ 54, 1000 x 1000 ~ 1334, 1092 x 1092 ~ 1590; the largest size
its table says is not resized, 784 x 1568, is 1639.3 tokens, so the count is capped at 1640.
This rule is published for the Claude 3 and 4 families (to 4.6). The current page
(https://platform.claude.com/docs/en/build-with-claude/vision) describes newer models by 28 x
28px patches, ceil(w/28) x ceil(h/28) visual tokens after a resize to the model's native
resolution, which it gives per model; Claude Opus 4.7 raised the long edge to 2576px. Models
other than the Claude 3 and 4 (to 4.6) families are counted by the larger of the two rules,
with that patch rule taken at a 2576px long edge and no cap on the count: an upper bound.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .size import Size

__all__ = ["openai_image_tokens", "anthropic_image_tokens", "openai_rule", "OPENAI_RULES", "TileRule", "PatchRule"]


@dataclass(frozen=True)
class TileRule:
    """OpenAI's 512px-tile rule, with the model's base and per-tile tokens."""

    base: int
    tile: int

    #: most tiles the fit-and-scale rule can produce: a 2048 x 768 image (a side over 768
    #: makes the shortest side 768, so at most 2 rows of 512px; the long side at most 2048,
    #: so at most 4 columns)
    MAX_TILES = 8

    def tokens(self, size: Size | None, detail: str | None) -> int:
        if detail == "low":
            return self.base
        if size is None:
            return self.base + self.MAX_TILES * self.tile
        return self.base + _tiles(*size) * self.tile


@dataclass(frozen=True)
class PatchRule:
    """OpenAI's 32px-patch rule (a 1536-patch budget) times the model's multiplier."""

    multiplier: float
    budget: int = 1536

    def tokens(self, size: Size | None, detail: str | None) -> int:
        patches = self.budget if size is None else _patches(*size, budget=self.budget)
        return math.ceil(patches * self.multiplier - 1e-9)  # 1024 x 1.62 is 1658.88 -> 1659


def _tiles(width: int, height: int) -> int:
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    return math.ceil(w / 512 - 1e-9) * math.ceil(h / 512 - 1e-9)


def _patches(width: int, height: int, *, budget: int, patch: int = 32) -> int:
    raw = math.ceil(width / patch) * math.ceil(height / patch)
    if raw <= budget:
        return raw
    shrink = math.sqrt(patch * patch * budget / (width * height))
    w, h = width * shrink / patch, height * shrink / patch
    if w < 1 or h < 1:  # a sliver the published steps would shrink to nothing: bill the cap
        return budget
    shrink *= min(math.floor(w) / w, math.floor(h) / h)
    resized = math.ceil(int(width * shrink + 1e-6) / patch) * math.ceil(int(height * shrink + 1e-6) / patch)
    return min(resized, budget)


OpenAIRule = TileRule | PatchRule

#: model -> rule, as published (module docstring). A dated snapshot (``gpt-4o-2024-08-06``)
#: follows its model; ``gpt-4-turbo`` has GPT-4o's figures, which the guide gave every vision
#: model before GPT-4o-mini.
OPENAI_RULES: dict[str, OpenAIRule] = {
    "gpt-4o": TileRule(85, 170),
    "gpt-4.1": TileRule(85, 170),
    "gpt-4.5-preview": TileRule(85, 170),
    "gpt-4-turbo": TileRule(85, 170),
    "gpt-4o-mini": TileRule(2833, 5667),
    "o1": TileRule(75, 150),
    "o1-pro": TileRule(75, 150),
    "o3": TileRule(75, 150),
    "computer-use-preview": TileRule(65, 129),
    "gpt-5": TileRule(70, 140),
    "gpt-5-chat-latest": TileRule(70, 140),
    "gpt-4.1-mini": PatchRule(1.62),
    "gpt-4.1-nano": PatchRule(2.46),
    "o4-mini": PatchRule(1.72),
    "gpt-5-mini": PatchRule(1.62),
    "gpt-5-nano": PatchRule(2.46),
}

_OPENAI_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def _base_model(model: str | None) -> str:
    name = (model or "").lower().rsplit("/", 1)[-1]
    if name.startswith("ft:"):  # a fine-tune: ft:gpt-4o-2024-08-06:org::id
        name = name.split(":")[1] if name.count(":") >= 1 else name
    return name


def openai_rule(model: str | None) -> OpenAIRule | None:
    """The published rule for ``model``, its dated snapshot or a variant of it named with a
    dash (``gpt-4o-mini-search-preview`` is GPT-4o-mini's, the longest name that fits), or
    ``None``. ``gpt-5.4`` is not a variant of ``gpt-5``: a newer model, with rules of its own."""
    name = _base_model(model)
    rule = OPENAI_RULES.get(name)
    if rule is None:
        rule = OPENAI_RULES.get(_OPENAI_SNAPSHOT.sub("", name))
    if rule is None:
        family = max((known for known in OPENAI_RULES if name.startswith(known + "-")), key=len, default=None)
        rule = OPENAI_RULES[family] if family is not None else None
    return rule


def openai_image_tokens(model: str | None, size: Size | None, detail: str | None) -> int:
    """Input tokens OpenAI bills for one image of ``size`` (``None``: unknown) at ``detail``
    for ``model``; the most expensive published rule for a model without one."""
    rule = openai_rule(model)
    if rule is not None:
        return rule.tokens(size, detail)
    return max(rule.tokens(size, detail) for rule in _FALLBACK_OPENAI_RULES)


#: the rules a model without one of its own is counted by, the dearest of them for each image:
#: every published rule but GPT-4o-mini's. Its figures (33 times GPT-4o's) bill its images at
#: GPT-4o's dollar price at its own token price, a sixteenth of GPT-4o's: counted on a model
#: with a normal token price, they would reserve some 30 times what its images cost.
_FALLBACK_OPENAI_RULES = tuple(dict.fromkeys(rule for name, rule in OPENAI_RULES.items() if name != "gpt-4o-mini"))


# -- Anthropic ---------------------------------------------------------------------------------

_ANTHROPIC_LONG_EDGE = 1568
#: ceil(784 x 1568 / 750): the largest image the guide's table says is sent unresized
_ANTHROPIC_MAX_TOKENS = 1640
_PATCH_LONG_EDGE = 2576  # Claude Opus 4.7's long edge
_PATCH = 28


def _area_tokens(size: Size | None) -> int:
    if size is None:
        return _ANTHROPIC_MAX_TOKENS
    w, h = size
    scale = min(1.0, _ANTHROPIC_LONG_EDGE / max(w, h))
    return min(math.ceil(w * scale * h * scale / 750 - 1e-9), _ANTHROPIC_MAX_TOKENS)


def _patch_tokens(size: Size | None) -> int:
    w, h = size if size is not None else (_PATCH_LONG_EDGE, _PATCH_LONG_EDGE)
    scale = min(1.0, _PATCH_LONG_EDGE / max(w, h))
    return math.ceil(w * scale / _PATCH - 1e-9) * math.ceil(h * scale / _PATCH - 1e-9)


def _most_expensive_anthropic(size: Size | None) -> int:
    return max(_area_tokens(size), _patch_tokens(size))


#: the Claude 3 and 4 (to 4.6) families, with or without a date or ``-latest``
_AREA_RULE_MODELS = re.compile(
    r"claude-(?:3-(?:opus|sonnet|haiku)|3-5-(?:sonnet|haiku)|3-7-sonnet|(?:opus|sonnet)-4|opus-4-1"
    r"|(?:opus|sonnet|haiku)-4-5|(?:opus|sonnet)-4-6)(?:-\d{8}|-latest)?"
)

def anthropic_image_tokens(model: str | None, size: Size | None) -> int:
    """Input tokens Anthropic bills for one image of ``size`` (``None``: unknown) for
    ``model``; the most expensive known rule for a model without a published one."""
    if _AREA_RULE_MODELS.fullmatch(_base_model(model)):
        return _area_tokens(size)
    return _most_expensive_anthropic(size)
