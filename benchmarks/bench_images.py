"""Image token estimates: what they add to counting a text-only prompt, and what sizing an
image costs next to decoding it (docs/benchmarks.md, "Image tokens").

    python benchmarks/bench_images.py [--runs 21]

1. Text-only prompts: the synthetic 100k-token conversation of bench_trim.py, its text counted
   by tiktoken (what llmspend did before images were counted) next to ``item_tokens`` (text plus
   the image check every message now gets), interleaved in one run: their ratio is the cost of
   looking for images in a prompt that has none.
2. Sizing: a 4096 x 4096 PNG and an 800 x 600 JPEG behind 100 KB of ICC/EXIF segments, as base64
   data URLs: ``data_url_size`` (header bytes only) next to ``base64.b64decode`` of the whole
   payload, which reading the size with an imaging library would need first.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_trim import machine, synthetic_conversation  # noqa: E402

from llmspend.tokens import TOKENS_PER_MESSAGE, count_text  # noqa: E402
from llmspend.trimming.messages import item_text, item_tokens  # noqa: E402
from llmspend.vision import data_url_size  # noqa: E402


def interleaved(runs: int, **fns: Callable[[], object]) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def encoded(fmt: str, size: tuple[int, int], **options: object) -> str:
    out = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(out, format=fmt, **options)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(out.getvalue()).decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    print(f"# {machine()}, {datetime.date.today()}, runs={args.runs}")

    messages = synthetic_conversation(100_000)
    model = "gpt-4o-mini"
    text_only = lambda: sum(TOKENS_PER_MESSAGE + count_text(item_text(m), model) for m in messages)  # noqa: E731
    with_images = lambda: sum(item_tokens(m, model) for m in messages)  # noqa: E731
    assert text_only() == with_images()
    t = interleaved(args.runs, text_only=text_only, with_images=with_images)
    print(f"text-only conversation, {len(messages)} messages, {text_only()} tokens:")
    print(f"  text counted alone          {t['text_only'] * 1e3:8.1f} ms")
    print(f"  text + image check          {t['with_images'] * 1e3:8.1f} ms   ratio {t['with_images'] / t['text_only']:.3f}")

    png = encoded("PNG", (4096, 4096), compress_level=1)
    jpeg = encoded("JPEG", (800, 600), icc_profile=bytes(range(256)) * 400)
    for name, url in (("PNG 4096x4096", png), ("JPEG 800x600 + 100 KB ICC", jpeg)):
        payload = url.split(",", 1)[1]
        t = interleaved(args.runs, size=lambda: data_url_size(url), decode=lambda: base64.b64decode(payload))
        print(f"{name}, {len(url) / 1e6:.1f} MB of base64, size {data_url_size(url)}:")
        print(f"  data_url_size (header only) {t['size'] * 1e6:8.1f} us")
        print(f"  b64decode of the payload    {t['decode'] * 1e6:8.1f} us   ratio {t['decode'] / t['size']:.0f}x")


if __name__ == "__main__":
    main()
