"""Prompt trimming: how long it takes, and what it saves on real text (issue 5, point 11).

    python benchmarks/bench_trim.py [--runs 15] [--data ../shared/data] [--json out.json]

1. Speed. A synthetic support conversation of about 100k tokens (user questions, markdown
   answers with code, tool calls with pretty-printed JSON results, a document pasted twice) is
   trimmed to 8k tokens: the median of ``--runs`` runs of ``llmspend.trim``, and of the trim
   stage's whole per-call work (parse the request body, trim, write it back), next to the time
   tiktoken alone takes to count the conversation's tokens (the floor any token-budget trimmer
   pays), measured interleaved in the same run. Also the stage's time on an ordinary 8k-token
   call that fits (the cost of leaving trimming on).
2. Effect on real text, read from ``--data`` (skipped, saying why, when absent):
   - a tutoring chat of real GSM8K questions and GPT-4's real answers
     (``routellm/gsm8k_2models.csv``), trimmed to 8k tokens as it grows, and its lossless
     savings alone (whitespace, repeats) with no budget pressure;
   - few-shot selection on MMLU (``routellm/mmlu_2models.csv``, which names each question's
     subject): from a pool of examples, keep the 5 most similar to each test question by BM25;
     prompt tokens before and after, and how often a chosen example shares the question's
     subject, against what choosing at random gives.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import llmspend
from llmspend import trim
from llmspend._http import Headers, Request
from llmspend.providers.openai import OpenAIAdapter
from llmspend.stages.trim import TrimOptions, TrimStage
from llmspend.tokens import TOKENS_REPLY_PRIMER, count_chat_messages

MODEL = "gpt-4o-mini"
ROOT = Path(__file__).resolve().parent.parent
_VOCAB = ("order refund parcel invoice account password shipping label courier warehouse discount voucher "
          "delivery address payment card receipt return exchange size colour customer ticket status "
          "tracking carrier weight box damaged replacement credit balance subscription plan renewal").split()


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_VOCAB) for _ in range(n))


def synthetic_conversation(target_tokens: int, seed: int = 7) -> list[dict[str, Any]]:
    """A support chat of about ``target_tokens`` tokens, with the things trimming meets."""
    rng = random.Random(seed)
    document = "\n\n".join(f"## Clause {n}\n{_words(rng, 70)}" for n in range(6))
    messages: list[dict[str, Any]] = []
    total = 0

    def add(message: dict[str, Any]) -> None:
        nonlocal total
        messages.append(message)
        total += count_chat_messages([message], MODEL) - TOKENS_REPLY_PRIMER

    add({"role": "system", "content": "You are the support assistant of Example Store. " + _words(rng, 300)})
    t = 0
    while total < target_tokens:
        add({"role": "user", "content": f"Ticket {t}:  {_words(rng, rng.randint(20, 90))}   \n\n\n\nThanks!"})
        if t % 4 == 1:
            call = f"call_{t}"
            add({"role": "assistant", "content": None, "tool_calls": [
                {"id": call, "type": "function", "function": {"name": "lookup_order", "arguments": json.dumps({"order": t})}}]})
            result = {"order": t, "status": rng.choice(["shipped", "delayed", "lost"]),
                      "events": [{"at": f"2025-01-{d + 1:02d}", "note": _words(rng, 8)} for d in range(6)]}
            add({"role": "tool", "tool_call_id": call, "content": json.dumps(result, indent=2)})
        if t % 25 == 3:
            add({"role": "user", "content": f"Here is the contract:\n\n{document}\n\nand again in case:\n\n{document}"})
        code = f"\n\n```python\nstatus = lookup({t})   # kept as is\nprint(status)\n```\n" if t % 6 == 0 else ""
        add({"role": "assistant", "content": f"**Answer {t}.**  {_words(rng, rng.randint(30, 120))}{code}"})
        t += 1
    messages.append({"role": "user", "content": "So, where is my latest order, and can I get a refund?"})
    return messages


def interleaved(fns: dict[str, Callable[[], Any]], runs: int) -> dict[str, float]:
    """Median seconds of each function, run in a shuffled order round after round."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    rng = random.Random(1)
    for _ in range(runs):
        names = list(fns)
        rng.shuffle(names)
        for name in names:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _request(messages: list[dict[str, Any]]) -> Request:
    body = json.dumps({"model": MODEL, "messages": messages}).encode()
    return Request("POST", "https://api.openai.com/v1/chat/completions",
                   Headers([("content-type", "application/json")]), body, adapter=OpenAIAdapter())


def speed(runs: int) -> dict[str, Any]:
    long = synthetic_conversation(100_000)
    fits = synthetic_conversation(8_000, seed=11)
    result = trim(long, model=MODEL, budget=8_000)
    stage = TrimStage(TrimOptions(budget=8_000))
    default_stage = TrimStage(TrimOptions())
    count = lambda: count_chat_messages(long, MODEL)  # noqa: E731
    medians = interleaved({
        "count tokens only": count,
        "llmspend.trim 100k -> 8k": lambda: trim(long, model=MODEL, budget=8_000),
        "stage 100k -> 8k (parse, trim, write back)": lambda: stage.prepare(_request(long)),
        "stage, 8k call that fits (default budget)": lambda: default_stage.prepare(_request(fits)),
    }, runs)
    return {
        "tokens_before": result.tokens_before,
        "tokens_after": result.tokens_after,
        "messages_before": len(long),
        "messages_after": len(result.messages),
        "fits_tokens": count_chat_messages(fits, MODEL),
        "median_s": medians,
        "trim_over_count": medians["llmspend.trim 100k -> 8k"] / medians["count tokens only"],
        "tokens_per_s": result.tokens_before / medians["llmspend.trim 100k -> 8k"],
    }


def gsm8k_chat(data: Path) -> dict[str, Any] | str:
    path = data / "routellm" / "gsm8k_2models.csv"
    if not path.exists():
        return f"skipped: {path} not found"
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))[:400]
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a patient maths tutor. Show your working."}]
    points = []
    for n, row in enumerate(rows, 1):
        messages.append({"role": "user", "content": row["prompt"]})
        result = trim(messages, model=MODEL, budget=8_000)
        lossless = trim(messages, model=MODEL, budget=10**7)
        if n in (5, 25, 50, 100, 200, 400):
            points.append({"turns": n, "tokens": result.tokens_before, "after_8k": result.tokens_after,
                           "lossless_only": lossless.tokens_after, "dropped": len(result.dropped)})
        messages.append({"role": "assistant", "content": row["gpt4_1106__answer"]})
    return {"points": points}


def mmlu_examples(data: Path, pools: tuple[int, ...] = (50, 500), tests: int = 300, k: int = 5) -> dict[str, Any] | str:
    path = data / "routellm" / "mmlu_2models.csv"
    if not path.exists():
        return f"skipped: {path} not found"
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("contaminated") != "1"]
    rng = random.Random(5)
    rng.shuffle(rows)
    questions = rows[:tests]
    out = {}
    for size in pools:
        pool = rows[tests: tests + size]
        examples = [{"input": r["prompt"], "output": "Answer: see the choices above."} for r in pool]
        share = Counter(r["domain"] for r in pool)
        same = chance = before = after = 0.0
        for q in questions:
            messages = [{"role": "system", "content": "Answer the multiple-choice question with one letter."},
                        {"role": "user", "content": q["prompt"]}]
            result = trim(messages, model=MODEL, budget=10**7, examples=examples, examples_k=k)
            before += result.tokens_before
            after += result.tokens_after
            same += sum(pool[i]["domain"] == q["domain"] for i in result.examples_used) / k
            chance += share[q["domain"]] / size
        n = len(questions)
        out[f"pool {size}"] = {"k": k, "mean_tokens_before": before / n, "mean_tokens_after": after / n,
                               "same_subject": same / n, "same_subject_at_random": chance / n}
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = {
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "llmspend": llmspend.__version__,
        "speed": speed(args.runs),
        "gsm8k_chat": gsm8k_chat(args.data),
        "mmlu_examples": mmlu_examples(args.data),
    }
    json.dump(report, sys.stdout, indent=2)
    print()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
