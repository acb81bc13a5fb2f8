"""Image sizes read from header bytes, and the providers' published image-token rules, checked
against the worked examples on their pages (llmspend/vision/rules.py quotes them)."""

from __future__ import annotations

import base64
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmspend.vision import anthropic_image_tokens, base64_image_size, data_url_size, image_size, openai_image_tokens
from llmspend.vision.rules import OPENAI_RULES, openai_rule

from .images import data_url, pillow_bytes, png_bytes


# -- sizes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "options"), [
    ("PNG", {}), ("JPEG", {}), ("JPEG", {"progressive": True}), ("GIF", {}),
    ("WEBP", {}), ("WEBP", {"lossless": True}), ("WEBP", {"alpha": True}),  # VP8, VP8L, VP8X
])
@pytest.mark.parametrize("size", [(1, 1), (37, 19), (1024, 768), (3000, 17)])
def test_sizes_of_every_format(fmt: str, options: dict[str, object], size: tuple[int, int]) -> None:
    data = pillow_bytes(*size, fmt, **options)
    assert image_size(data) == size
    encoded = base64.b64encode(data).decode()
    assert base64_image_size(encoded) == size
    assert data_url_size(data_url(data, f"image/{fmt.lower()}")) == size


def test_a_hand_written_png() -> None:
    assert image_size(png_bytes(640, 480)) == (640, 480)


def test_a_jpeg_whose_frame_header_follows_large_segments() -> None:
    icc = bytes(range(256)) * 400  # ~100 KB of ICC profile: two APP2 segments before the frame
    data = pillow_bytes(800, 600, "JPEG", icc_profile=icc, exif=b"Exif\x00\x00" + b"\x00" * 30_000)
    assert data.index(b"\xff\xc0") > 100_000
    assert base64_image_size(base64.b64encode(data).decode()) == (800, 600)


def test_only_the_header_is_decoded() -> None:
    # base64 of a PNG's first 33 bytes, then characters that are not base64 at all: decoding the
    # whole payload would fail, reading the header does not
    head = base64.b64encode(png_bytes(300, 200)[:33]).decode()
    assert base64_image_size(head + "!!!! not base64 ~~~~" * 1000) == (300, 200)
    assert data_url_size("data:image/png;base64," + head + "%%%%") == (300, 200)


@pytest.mark.parametrize("payload", [
    "", "AAAA", "not base64 at all!", base64.b64encode(b"GIF89a").decode(),  # truncated GIF
    base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 4).decode(),  # truncated PNG
    base64.b64encode(b"\xff\xd8\xff\xe0\x00\x10JFIF").decode(),  # a JPEG cut before its frame
    base64.b64encode(b"\xff\xd8\xff\xe0\xff\xff" + b"\x00" * 10).decode(),  # a segment length past the end
    base64.b64encode(b"RIFF\x00\x00\x00\x00WEBPVP8Z" + b"\x00" * 20).decode(),  # unknown WebP chunk
    base64.b64encode(pillow_bytes(10, 10, "BMP")).decode(),  # a format providers do not take
])
def test_unreadable_data_has_no_size(payload: str) -> None:
    assert base64_image_size(payload) is None
    assert data_url_size("data:image/png;base64," + payload) is None


@pytest.mark.parametrize("url", ["https://example.com/cat.png", "data:image/png,rawbytes", "data:image/png;base64",
                                 "file-abc123", "data:" + "x" * 400 + ";base64,AAAA"])
def test_urls_that_are_not_base64_data_have_no_size(url: str) -> None:
    assert data_url_size(url) is None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    for prefix in (b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP"):
        image_size(prefix + data)
        base64_image_size(base64.b64encode(prefix + data).decode())


# -- OpenAI's rules ----------------------------------------------------------------------------
def test_openai_tile_rule_worked_examples() -> None:
    assert openai_image_tokens("gpt-4o", (1024, 1024), "high") == 765
    assert openai_image_tokens("gpt-4o", (2048, 4096), "high") == 1105
    assert openai_image_tokens("gpt-4o", (4096, 8192), "low") == 85
    assert openai_image_tokens("gpt-4o-2024-08-06", (1024, 1024), "high") == 765  # a dated snapshot
    assert openai_image_tokens("ft:gpt-4o-2024-08-06:acme::abc123", (1024, 1024), "high") == 765  # a fine-tune
    assert openai_image_tokens("gpt-4o-mini", (1024, 1024), "high") == 2833 + 4 * 5667
    assert openai_image_tokens("gpt-4o-mini", (128, 64), "auto") == 2833 + 5667  # one tile, never upscaled
    assert openai_image_tokens("o3", (1024, 1024), None) == 75 + 4 * 150
    assert openai_image_tokens("gpt-5", (1024, 1024), "original") == 70 + 4 * 140


def test_openai_patch_rule_worked_examples() -> None:
    # 1024 x 1024 is 1024 patches; 1800 x 2400 is 1452 patches; times each model's multiplier
    assert openai_image_tokens("gpt-4.1-mini", (1024, 1024), "high") == 1659  # 1024 x 1.62 = 1658.88
    assert openai_image_tokens("gpt-4.1-nano", (1800, 2400), "high") == 3572  # 1452 x 2.46 = 3571.92
    assert openai_image_tokens("o4-mini", (1800, 2400), "low") == 2498  # detail does not change patches
    assert openai_image_tokens("gpt-5-mini", (32, 32), "high") == 2  # 1 x 1.62, rounded up
    assert openai_image_tokens("gpt-5-nano", (100_000, 10), None) == 3779  # capped at 1536 x 2.46


@pytest.mark.parametrize("model", sorted(OPENAI_RULES))
@pytest.mark.parametrize("detail", ["low", "high", "auto", "original", None])
@settings(max_examples=40, deadline=None)
@given(size=st.tuples(st.integers(1, 9000), st.integers(1, 9000)))
def test_an_unknown_size_is_the_rules_upper_bound(model: str, detail: str | None, size: tuple[int, int]) -> None:
    assert 0 < openai_image_tokens(model, size, detail) <= openai_image_tokens(model, None, detail)


def test_unknown_size_bounds_are_the_largest_the_rule_can_give() -> None:
    assert openai_image_tokens("gpt-4o", None, "high") == 85 + 8 * 170 == openai_image_tokens("gpt-4o", (2048, 768), "high")
    assert openai_image_tokens("gpt-4o", None, "low") == 85  # low detail is exact whatever the size
    assert openai_image_tokens("gpt-4.1-mini", None, "low") == 2489  # 1536 x 1.62


@pytest.mark.parametrize(("model", "family"), [("gpt-4o-mini-search-preview", "gpt-4o-mini"),
                                              ("gpt-4o-search-preview", "gpt-4o"),
                                              ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
                                              ("gpt-5-mini-2025-08-07", "gpt-5-mini")])
def test_a_variant_named_with_a_dash_follows_its_model(model: str, family: str) -> None:
    # before, gpt-4o-mini-search-preview fell to the fallback: a tenth of GPT-4o-mini's count
    assert openai_rule(model) == OPENAI_RULES[family]


@pytest.mark.parametrize("model", ["gpt-5.4", "gpt-6-astra", "gpt-4.2", "llama-4-scout", None])
def test_a_model_without_a_published_rule_gets_the_most_expensive(model: str | None) -> None:
    # the dearest published rule for each image, GPT-4o-mini's aside (scaled to its own token
    # price, it would reserve some 30 times an image's cost on any other model)
    assert openai_rule(model) is None
    others = [known for known in OPENAI_RULES if known != "gpt-4o-mini"]
    for size in [(1024, 1024), (128, 64), (3000, 200), None]:
        for detail in ["low", "high"]:
            got = openai_image_tokens(model, size, detail)
            assert got == max(openai_image_tokens(known, size, detail) for known in others)
            assert got >= openai_image_tokens("gpt-4o", size, detail)
    assert openai_image_tokens(model, (1024, 1024), "high") == math.ceil(1024 * 2.46)  # gpt-4.1-nano's patches
    assert openai_image_tokens(model, None, "high") == math.ceil(1536 * 2.46)


# -- Anthropic's rule ----------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["claude-3-5-sonnet-20241022", "claude-sonnet-4-5", "claude-haiku-4-5-20251001",
                                   "claude-opus-4-6", "claude-3-haiku-latest"])
def test_anthropic_worked_examples(model: str) -> None:
    assert anthropic_image_tokens(model, (200, 200)) == 54
    assert anthropic_image_tokens(model, (1000, 1000)) == 1334
    assert anthropic_image_tokens(model, (1092, 1092)) == 1590
    assert anthropic_image_tokens(model, (8000, 8000)) == anthropic_image_tokens(model, None) == 1640


@pytest.mark.parametrize("model", ["claude-opus-4-7", "claude-sonnet-5", "claude-future"])
def test_other_claude_models_get_the_larger_rule(model: str) -> None:
    assert anthropic_image_tokens(model, (1000, 1000)) == max(1334, 36 * 36)
    assert anthropic_image_tokens(model, (2576, 1288)) == 92 * 46  # patches of 28px at a 2576px long edge
    assert anthropic_image_tokens(model, None) == 92 * 92


@settings(max_examples=200, deadline=None)
@given(size=st.tuples(st.integers(1, 9000), st.integers(1, 9000)))
def test_anthropic_unknown_size_bounds(size: tuple[int, int]) -> None:
    for model in ("claude-sonnet-4-5", "claude-opus-4-7"):
        assert 0 < anthropic_image_tokens(model, size) <= anthropic_image_tokens(model, None)


def test_the_package_example_runs() -> None:
    import doctest

    import llmspend.vision

    assert doctest.testmod(llmspend.vision).failed == 0
