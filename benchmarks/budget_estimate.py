"""How far the provider's input-token count lies above llmspend's local estimate, on real
prompts: what the budget stage's input margin must cover for its overspend bound to hold.

Reads ../shared/data/cascade/*.csv (real prompts sent to 9 models, with the token counts each
provider reported) and compares them with ``OpenAIAdapter.estimate_input_tokens`` on the same
chat request. Run from the repository root:

    python benchmarks/budget_estimate.py [--data ../shared/data/cascade]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

from llmspend.providers.base import Call
from llmspend.providers.openai import OpenAIAdapter
from llmspend.stages.budget import DEFAULT_INPUT_MARGIN

MODELS = ("gpt-4o", "gpt-4o-mini", "llama3.1-8b", "llama3.1-70b", "qwen2.5-72b-instruct")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cascade"))
    args = parser.parse_args()
    data = Path(args.data)
    files = sorted(data.glob("*.csv"))
    if not files:
        print(f"skipped: no cascade data at {data} (see ../shared/data/README.md)")
        return 0
    adapter = OpenAIAdapter()
    print(f"{'file':<20} {'model':<22} {'prompts':>7} {'median':>7} {'p99':>7} {'max':>7}  (provider count / estimate)")
    worst = 0.0
    total = 0
    for path in files:
        rows = list(csv.DictReader(path.open()))
        for model in MODELS:
            if f"{model}__tok_in" not in rows[0]:
                continue
            ratios = []
            for row in rows:
                messages = ([{"role": "system", "content": row["system_prompt"]}] if row["system_prompt"] else [])
                messages.append({"role": "user", "content": row["user_prompt"]})
                call = Call("openai", "chat", "chat.completions", model, False, "x", 443, body={"messages": messages})
                real = float(row[f"{model}__tok_in"])
                if real > 0:
                    ratios.append(real / adapter.estimate_input_tokens(call))
            ratios.sort()
            total += len(ratios)
            worst = max(worst, ratios[-1])
            p99 = ratios[min(len(ratios) - 1, int(len(ratios) * 0.99))]
            print(f"{path.stem:<20} {model:<22} {len(ratios):>7} {statistics.median(ratios):>7.3f} {p99:>7.3f} {ratios[-1]:>7.3f}")
    print(f"\nworst provider/estimate ratio over {total} prompt counts: {worst:.3f}; the budget stage's "
          f"default input margin {DEFAULT_INPUT_MARGIN} covers ratios up to {1 + DEFAULT_INPUT_MARGIN:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
