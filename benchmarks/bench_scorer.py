"""Scorer throughput: onnxruntime (float32 and int8) against the same model in PyTorch eager.

One MiniLM scorer (all-MiniLM-L6-v2, frozen, logistic head on [embedding, conf_raw]) is trained
from the cascade data with ``train_scorer``, quantised with ``quantize_scorer``, and rebuilt in
PyTorch from the same weights (the script checks the three agree). Then, interleaved round by
round so that a busy machine slows all three alike, each engine scores the same (query, answer)
pairs end to end (tokenising included) at batch 1 and batch 32. Reported: median pairs/s over
the rounds and the median per-round ratio to PyTorch eager.

``--quality`` adds how well the scorer ranks answers it never saw: trained on ``*_train.csv``,
AUC on ``*_test.csv``, against the provider's log-probability alone and the text alone.

    PYTHONPATH=$PWD python benchmarks/bench_scorer.py --quality --json scorer.json
    PYTHONPATH=$PWD python benchmarks/bench_scorer.py --device cuda    # on a GPU machine
    PYTHONPATH=$PWD python benchmarks/bench_scorer.py --quality

Runs offline from a checkout with ``pip install -e '.[train]'``; the data is read from
``../shared/data/cascade`` (or ``--data``) and never copied.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cascade"
TRAIN_MODEL = "gpt-4o-mini"
FEATURES = ("conf_raw",)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def pairs_for_timing(data: Path, count: int, seed: int) -> list[Any]:
    """A fixed sample of real (question, answer) pairs from every dataset and model."""
    from llmspend.scoring import load_rows

    models = ["llama3.2-1b", "llama3.1-8b", "llama3.1-70b", "gpt-4o-mini", "gpt-4o"]
    rows = []
    for name in ("mmlu_test.csv", "triviaqa_test.csv", "gsm8k_train.csv"):
        for model in models:
            rows += load_rows(data / name, model=model, feature_names=FEATURES)
    rng = np.random.default_rng(seed)
    return [rows[i] for i in rng.choice(len(rows), size=count, replace=False)]


class TorchScorer:
    """The scorer's PyTorch twin, scoring end to end like OnnxScorer (tokenise, pad, run)."""

    def __init__(self, model: Any, encoder: Any, device: str) -> None:
        import torch

        self.torch = torch
        self.model = model.to(device).eval()
        self.encoder = encoder
        self.device = device

    def score(self, queries: list[str], answers: list[str], features: list[list[float]]) -> list[float]:
        torch = self.torch
        with torch.inference_mode():
            tensors = [t.to(self.device) for t in self.encoder.tensors(queries, answers)]
            f = torch.tensor(features, dtype=torch.float32, device=self.device)
            return torch.sigmoid(self.model(*tensors, f)).double().cpu().tolist()  # type: ignore[no-any-return]


def build(data: Path, work: Path, device: str, threads: int) -> dict[str, Any]:
    import torch

    from llmspend.scoring import OnnxScorer, PairEncoder, fit_head, load_rows, quantize_scorer, train_scorer
    from llmspend.scoring.train import ScorerModel

    rows = load_rows(data / "mmlu_train.csv", model=TRAIN_MODEL, feature_names=FEATURES)
    encoder = PairEncoder("minilm", threads=threads, progress=False)
    wall, cpu = time.perf_counter(), time.process_time()
    fp32_dir = train_scorer(rows, work / "fp32", encoder=encoder, feature_names=FEATURES, progress=False)
    train_wall, train_cpu = time.perf_counter() - wall, time.process_time() - cpu
    int8_dir = quantize_scorer(fp32_dir, work / "int8", check_rows=rows[:64])
    l2 = OnnxScorer(fp32_dir, providers=["CPUExecutionProvider"]).metadata.training["head"]["l2"]
    embeddings = encoder.embed([r.query for r in rows], [r.answer for r in rows])
    head = fit_head(embeddings, [r.correct for r in rows], features=np.array([r.features for r in rows]),
                    l2=float(l2))  # deterministic for a given l2: the same head train_scorer exported
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    engines = {
        "onnxruntime fp32": OnnxScorer(fp32_dir, providers=providers, threads=threads),
        "onnxruntime int8": OnnxScorer(int8_dir, providers=providers, threads=threads),
        "pytorch eager": TorchScorer(ScorerModel(encoder.module, head.module), encoder, device),
    }
    return {"engines": engines, "train_rows": len(rows), "train_wall_s": train_wall, "train_cpu_s": train_cpu,
            "torch_threads": torch.get_num_threads()}


def score_fn(engine: Any) -> Callable[[list[Any]], list[float]]:
    def run(batch: list[Any]) -> list[float]:
        args = ([r.query for r in batch], [r.answer for r in batch])
        return list(engine.score(*args, features=[list(r.features) for r in batch]))
    return run


def throughput(engines: dict[str, Any], pairs: list[Any], batch: int, rounds: int) -> dict[str, Any]:
    runs = {name: score_fn(engine) for name, engine in engines.items()}
    batches = [pairs[i:i + batch] for i in range(0, len(pairs), batch)]
    for run in runs.values():  # warm up: first calls allocate and (on GPU) pick kernels
        run(batches[0])
    rates: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate who goes first
            start = time.perf_counter()
            for chunk in batches:
                runs[name](chunk)
            rates[name].append(len(pairs) / (time.perf_counter() - start))
    base = rates["pytorch eager"]
    return {name: {"pairs_per_s": statistics.median(v), "min": min(v), "max": max(v),
                   "ratio_to_pytorch": statistics.median(a / b for a, b in zip(v, base))}
            for name, v in rates.items()}


def agreement(engines: dict[str, Any], pairs: list[Any]) -> dict[str, float]:
    scores = {name: np.asarray(score_fn(e)(pairs)) for name, e in engines.items()}
    ref = scores["pytorch eager"]
    return {name: float(np.abs(s - ref).max()) for name, s in scores.items() if name != "pytorch eager"}


def quality(data: Path, models: list[str], test_rows: int, threads: int) -> list[dict[str, Any]]:
    from llmspend.scoring import PairEncoder, fit_head, load_rows
    from llmspend.scoring.head import auc

    encoder = PairEncoder("minilm", threads=threads, progress=False)
    out = []
    for dataset in ("mmlu", "triviaqa"):
        for model in models:
            train = load_rows(data / f"{dataset}_train.csv", model=model, feature_names=FEATURES)
            test = load_rows(data / f"{dataset}_test.csv", model=model, feature_names=FEATURES)[:test_rows]
            x_train = encoder.embed([r.query for r in train], [r.answer for r in train])
            x_test = encoder.embed([r.query for r in test], [r.answer for r in test])
            y_train = np.array([r.correct for r in train])
            y_test = np.array([r.correct for r in test])
            f_train = np.array([r.features for r in train], dtype=np.float64)
            f_test = np.array([r.features for r in test], dtype=np.float64)
            both = fit_head(x_train, y_train, features=f_train)
            text = fit_head(x_train, y_train)
            conf = np.nan_to_num(f_test[:, 0], nan=-np.inf)
            out.append({
                "dataset": dataset, "model": model, "train": len(train), "test": len(test),
                "test_accuracy": float(y_test.mean()),
                "auc_logprob": auc(conf, y_test),
                "auc_text": auc(text.predict(x_test), y_test),
                "auc_scorer": auc(both.predict(x_test, f_test), y_test),
                "scorer_l2": "inf" if both.l2 == float("inf") else both.l2,
            })
            print(f"  {dataset:8} {model:14} log-prob {out[-1]['auc_logprob']:.3f}  text {out[-1]['auc_text']:.3f}  "
                  f"scorer {out[-1]['auc_scorer']:.3f}  (l2 {out[-1]['scorer_l2']})", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the cascade data directory")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for both runtimes")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=128, help="pairs scored per round (the same at both batch sizes)")
    parser.add_argument("--quality", action="store_true", help="also measure held-out AUC (slow: embeds test sets)")
    parser.add_argument("--quality-models", nargs="+", default=["llama3.1-8b", "gpt-4o-mini"])
    parser.add_argument("--test-rows", type=int, default=400, help="test rows per dataset and model for --quality")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if not args.data.is_dir():
        print(f"skipped: the cascade data is not at {args.data} (give --data DIR)")
        return 0
    import torch

    torch.set_num_threads(args.threads)
    device = args.device
    if device == "cuda":
        from llmspend.scoring.onnx import cuda_unavailable_reason

        why = cuda_unavailable_reason()
        if not torch.cuda.is_available() or why:
            print(f"no usable GPU ({why or 'torch.cuda.is_available() is False'}): measuring on the CPU instead")
            device = "cpu"
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "machine": f"{cpu_name()}, {os.cpu_count()} cores",
        "python": platform.python_version(), "torch": torch.__version__, "device": device,
        "threads": args.threads, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
    if device == "cuda":
        result["gpu"] = torch.cuda.get_device_name(0)
    import onnxruntime

    result["onnxruntime"] = onnxruntime.__version__
    with tempfile.TemporaryDirectory(prefix="bench-scorer-") as work:
        built = build(args.data, Path(work), device, args.threads)
        engines = built.pop("engines")
        result.update(built)
        result["providers"] = {name: getattr(e, "provider", device) for name, e in engines.items()}
        pairs = pairs_for_timing(args.data, args.pairs, args.seed)
        tokens = [len(e.ids) for e in engines["onnxruntime fp32"]._tokens.encode(
            [r.query for r in pairs], [r.answer for r in pairs])]
        result["pair_tokens"] = {"mean": float(np.mean(tokens)), "median": float(np.median(tokens)), "max": max(tokens)}
        # at batch 32 every pair is padded to the longest of its batch: the share of wasted positions
        padded = sum(max(tokens[i:i + 32]) * len(tokens[i:i + 32]) for i in range(0, len(tokens), 32))
        result["padding_share_batch_32"] = 1.0 - sum(tokens) / padded
        result["max_abs_diff_to_pytorch"] = agreement(engines, pairs[:64])
        print(f"{result['machine']}, {device}, {args.threads} threads; pairs of {result['pair_tokens']['mean']:.0f} "
              f"tokens on average; scorer trained on {built['train_rows']} pairs in {built['train_wall_s']:.1f} s "
              f"({built['train_cpu_s']:.1f} s CPU); at batch 32, {result['padding_share_batch_32']:.0%} of positions are padding")
        print(f"agreement with PyTorch (max |dP|): {result['max_abs_diff_to_pytorch']}")
        result["batch_1"] = throughput(engines, pairs, 1, args.rounds)
        result["batch_32"] = throughput(engines, pairs, 32, args.rounds)
    print(f"\n{'engine':18} {'batch 1 pairs/s':>16} {'x eager':>8} {'batch 32 pairs/s':>17} {'x eager':>8}")
    for name in result["batch_1"]:
        one, many = result["batch_1"][name], result["batch_32"][name]
        print(f"{name:18} {one['pairs_per_s']:16.1f} {one['ratio_to_pytorch']:8.2f} "
              f"{many['pairs_per_s']:17.1f} {many['ratio_to_pytorch']:8.2f}")
    if args.quality:
        print("\nheld-out AUC (trained on *_train, measured on *_test):")
        result["quality"] = quality(args.data, args.quality_models, args.test_rows, args.threads)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
