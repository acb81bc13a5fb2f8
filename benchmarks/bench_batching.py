"""Query batching on real questions: input tokens per question at b = 1, 2, 4, 8, and whether
every answer reaches the caller who asked its question.

    python benchmarks/bench_batching.py [--data ../shared/data/cascade] [--shots 12] [--questions 128]

Data: MMLU questions from ``mmlu_test.csv`` (``system_prompt``, ``user_prompt``), with a
K-shot prefix built from the first K rows of ``mmlu_train.csv`` (question, then its gold
letter as the assistant's answer). Skips, saying why, when the data is absent.

Two measurements, side by side:

1. *Prompt tokens per question* (tiktoken, offline): one question per request (b = 1)
   against the batched prompt the batch stage builds (the same prefix, an instruction and
   b tagged questions), divided by b. Compared with Batch Prompting's model
   (K + b) / (b (K + 1)), which assumes every example and question has the same length and
   the prompt nothing else (no system message, no instruction).
2. *Answers matched to their questions*, through the real stage: ``llmspend.wrap(AsyncOpenAI,
   batch=...)`` against the fake server, which answers each ``Q[i]`` with a function of that
   question alone, so a delivered answer can be checked. Run clean and with faults injected
   into a share of the merged replies (missing, duplicated, malformed tags, a cut-off reply, an
   unasked index, a shuffled order, and a swap of two answers). The provider-reported prompt
   tokens include the questions asked again. This measures the stage's bookkeeping on
   replies of known shape, not a model's accuracy: a real model that answers question 2
   under tag 3 (the "swap" fault) cannot be caught by any parser, and is counted as wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import openai  # noqa: E402

import llmspend  # noqa: E402
from llmspend.batching.merge import merged_body  # noqa: E402
from llmspend.batching.prompt import TaggedFormat  # noqa: E402
from llmspend.testing import FakeLLMServer  # noqa: E402
from llmspend.testing.batch_prompts import BatchFault  # noqa: E402
from llmspend.tokens import count_chat_messages, encoding_for  # noqa: E402

MODEL = "gpt-4o-mini"
SIZES = (1, 2, 4, 8)
# An MMLU answer is one letter, but the fake server answers in 12 to 40 words; a bound that
# cuts its answers would make the stage ask them again (correctly) and hide what is measured.
MAX_TOKENS = 64


def load(data: Path, shots: int, questions: int) -> tuple[list[dict[str, str]], list[str]]:
    with (data / "mmlu_train.csv").open(newline="") as handle:
        train = list(csv.DictReader(handle))
    with (data / "mmlu_test.csv").open(newline="") as handle:
        test = list(csv.DictReader(handle))
    prefix = [{"role": "system", "content": train[0]["system_prompt"]}]
    for row in train[:shots]:
        prefix += [{"role": "user", "content": row["user_prompt"]}, {"role": "assistant", "content": row["gold"]}]
    return prefix, [row["user_prompt"] for row in test[:questions]]


def request(prefix: list[dict[str, str]], question: str) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": MAX_TOKENS, "temperature": 0,
            "messages": [*prefix, {"role": "user", "content": question}]}


def tokens_per_question(prefix: list[dict[str, str]], questions: list[str], b: int) -> float:
    """Prompt tokens per question when questions go b to a request (tokenizer count)."""
    total = 0
    groups = [questions[i:i + b] for i in range(0, len(questions) - len(questions) % b, b)]
    for group in groups:
        bodies = [request(prefix, q) for q in group]
        body = bodies[0] if b == 1 else merged_body(bodies, TaggedFormat())
        total += count_chat_messages(body["messages"], MODEL)
    return total / (len(groups) * b)


def random_fault(rng: random.Random, size: int) -> BatchFault:
    kind = rng.choice(["missing", "duplicate", "malformed", "truncate", "extra", "shuffle", "swap"])
    index = rng.randint(1, size)
    if kind == "truncate":
        return BatchFault(truncate=True)
    if kind == "shuffle":
        return BatchFault(shuffle=True)
    if kind == "extra":
        return BatchFault(extra=[size + 1])
    if kind == "swap":
        return BatchFault(swap=(1, 2))
    return BatchFault(**{kind: [index]})


@dataclass
class StageRun:
    merged_requests: int
    single_requests: int
    faults_injected: int
    prompt_tokens_per_question: float
    correct: int
    asked_again: int
    wrong: int
    total: int


async def run_stage(prefix: list[dict[str, str]], questions: list[str], b: int, fault_rate: float, seed: int) -> StageRun:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    rng = random.Random(seed)
    with FakeLLMServer() as server:
        raw = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-bench")
        # A long window, so that groups fill up to b on this slow shared machine: what is
        # measured here is the bookkeeping, not the latency.
        options: dict[str, Any] = {"batch": {"window_ms": 2000, "max_size": b}} if b > 1 else {}
        client = llmspend.wrap(raw, retry=False, tracer_provider=tracer_provider, **options)
        faults = [random_fault(rng, b) if rng.random() < fault_rate else BatchFault() for _ in range(len(questions) // b + 1)]
        for fault in faults:
            server.fault_next_batch(fault)
        requests = [request(prefix, q) for q in questions]
        if b > 1:
            results = await llmspend.batch(client, requests)
        else:
            results = await asyncio.gather(*(client.chat.completions.create(**r) for r in requests))
        upstream = len(server.requests)
        injected = sum(f != BatchFault() for f in faults) - sum(f != BatchFault() for f in server._batch_faults)
        spans = exporter.get_finished_spans()
        merged = sum(s.name.startswith("batch ") for s in spans)
        asked_again = sum("llmspend.batch.resent" in (s.attributes or {}) for s in spans)
        plain = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-bench")
        correct = wrong = 0
        for req, question, result in zip(requests, questions, results):
            content = result.choices[0].message.content
            if b > 1 and content == server.batched_answer(MODEL, question):
                correct += 1
                continue
            alone = await plain.chat.completions.create(**req)  # what it gets when asked on its own
            if content == alone.choices[0].message.content:
                correct += 1
            else:
                wrong += 1
        prompt_tokens = sum(r.usage.prompt_tokens for r in results)
        await client.close()
        await raw.close()
        await plain.close()
    return StageRun(merged, upstream - merged, injected, prompt_tokens / len(questions), correct, asked_again, wrong,
                    len(questions))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cascade"),
                        help="folder with mmlu_train.csv and mmlu_test.csv (default ../shared/data/cascade)")
    parser.add_argument("--shots", type=int, default=12, help="K, the few-shot examples in the prefix (default 12)")
    parser.add_argument("--questions", type=int, default=128, help="test questions to use (default 128)")
    parser.add_argument("--fault-rate", type=float, default=0.25, help="share of merged replies given a fault (default 0.25)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    data = Path(args.data)
    if not (data / "mmlu_test.csv").exists():
        print(f"skipped: {data / 'mmlu_test.csv'} not found (pass --data DIR with the cascade CSVs)")
        return 0
    prefix, questions = load(data, args.shots, args.questions)
    k = args.shots
    encoding = encoding_for(MODEL).name
    print(f"# bench_batching: {platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs), Python "
          f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}")
    print(f"# {len(questions)} MMLU test questions, K = {k} shots from mmlu_train, tokens: tiktoken {encoding}")
    print(f"# command: python benchmarks/bench_batching.py --shots {k} --questions {args.questions} "
          f"--fault-rate {args.fault_rate} --seed {args.seed}\n")

    figures: dict[str, Any] = {"shots": k, "questions": len(questions), "encoding": encoding, "sizes": {}}
    base = tokens_per_question(prefix, questions, 1)
    print("| b | prompt tokens per question | measured ratio | model (K+b)/(b(K+1)) | stage: prompt tokens per question "
          "(provider count) | stage: merged + single requests | answers matched, clean | faults injected "
          "| answers matched, with faults | asked again | wrong (swaps) | prompt tokens per question, with faults |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for b in SIZES:
        per_question = tokens_per_question(prefix, questions, b)
        model = (k + b) / (b * (k + 1))
        clean = asyncio.run(run_stage(prefix, questions, b, 0.0, args.seed))
        faulty = asyncio.run(run_stage(prefix, questions, b, args.fault_rate, args.seed)) if b > 1 else clean
        print(f"| {b} | {per_question:.1f} | {per_question / base:.3f} | {model:.3f} "
              f"| {clean.prompt_tokens_per_question:.1f} | {clean.merged_requests} + {clean.single_requests} "
              f"| {clean.correct}/{clean.total} | {faulty.faults_injected} | {faulty.correct}/{faulty.total} "
              f"| {faulty.asked_again} | {faulty.wrong} | {faulty.prompt_tokens_per_question:.1f} |")
        figures["sizes"][b] = {"tokens_per_question": per_question, "ratio": per_question / base, "model": model,
                               "clean": clean.__dict__, "faults": faulty.__dict__}
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
