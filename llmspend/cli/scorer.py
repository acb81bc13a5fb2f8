"""``llmspend scorer train|score|info``: train a cascade scorer offline, try it, inspect it."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from ..exceptions import ConfigError


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "scorer",
        help="train, try and inspect answer scorers for cascades",
        description="Scorers judge a model's answer: P(correct) for a (query, answer) pair, from a small "
        "text encoder and optional numeric features. See docs/scoring.md.",
    )
    parser.set_defaults(parser=parser)
    commands = parser.add_subparsers(dest="scorer_command", metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train a scorer and write a scorer directory",
        description="Train a scorer from judged answers and export it to ONNX (needs pip install 'llmspend[train]'). "
        "FILE is JSONL of {query, answer, correct[, model][, features]} or CSV with those columns, or a "
        "wide CSV with MODEL__answer / MODEL__correct columns (then --model picks the model). Runs offline.",
    )
    train.add_argument("--data", required=True, metavar="FILE", help="training rows (.jsonl or .csv)")
    train.add_argument("--out", required=True, metavar="DIR", help="scorer directory to write")
    train.add_argument("--model", help="use only this model's rows (required for a wide CSV)")
    train.add_argument("--features", nargs="+", default=[], metavar="NAME",
                       help="numeric features to read besides the text, e.g. conf_raw")
    train.add_argument("--encoder", choices=("minilm", "tiny"), default="minilm",
                       help="minilm: all-MiniLM-L6-v2 (default); tiny: random weights, for tests")
    train.add_argument("--l2", type=float, help="L2 strength on the text weights (default: chosen by cross-validation)")
    train.add_argument("--finetune", action="store_true", help="also train the encoder (slower)")
    train.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs (default 2)")
    train.add_argument("--batch-size", type=int, default=16, help="fine-tuning batch size (default 16)")
    train.add_argument("--lr", type=float, default=2e-5, help="fine-tuning learning rate of the encoder (default 2e-5)")
    train.add_argument("--max-length", type=int, default=256, help="tokens per pair (default 256)")
    train.add_argument("--quantize", action="store_true", help="write an int8 model (smaller, faster on CPU)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(func=run_train, parser=train)

    score = commands.add_parser("score", help="score one (query, answer) pair",
                                description="Print P(correct) for one answer, as a scorer directory judges it.")
    score.add_argument("--scorer", required=True, metavar="DIR", help="scorer directory")
    score.add_argument("--query", required=True)
    score.add_argument("--answer", required=True)
    score.add_argument("--model", help="the model that answered (checked against the scorer's models)")
    score.add_argument("--feature", action="append", default=[], metavar="NAME=VALUE",
                       help="a numeric feature the scorer reads (repeat for several; each one is required, "
                       "VALUE nan when it is not known)")
    score.add_argument("--json", action="store_true", help="print JSON")
    score.set_defaults(func=run_score, parser=score)

    info = commands.add_parser("info", help="show a scorer's metadata and where it would run",
                               description="Show a scorer directory's metadata and the onnxruntime provider it runs on.")
    info.add_argument("directory", metavar="DIR")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=run_info, parser=info)


def run_train(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: nothing here uses the hub
    from ..scoring.data import load_rows

    try:
        from ..scoring.train import train_scorer
    except ImportError as exc:
        raise ConfigError(str(exc)) from exc
    rows = load_rows(args.data, model=args.model, feature_names=args.features)
    correct = sum(r.correct for r in rows)
    print(f"{len(rows)} rows from {args.data} ({correct} correct, {len(rows) - correct} incorrect)", file=sys.stderr)
    started = time.perf_counter()
    out = train_scorer(
        rows, args.out, encoder=args.encoder, feature_names=args.features, l2=args.l2, finetune=args.finetune,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, max_length=args.max_length,
        quantize=args.quantize, seed=args.seed, progress=not args.no_progress, source=os.path.basename(args.data),
    )
    from ..scoring.metadata import ScorerMetadata

    meta = ScorerMetadata.read(out)
    export = meta.export
    print(f"wrote {out} in {time.perf_counter() - started:.1f} s")
    print(f"  encoder  {meta.encoder.get('name')}{' (fine-tuned)' if args.finetune else ' (frozen)'}")
    print(f"  head     logistic, l2 on text weights = {meta.training['head']['l2']}")
    print(f"  export   max |P_onnx - P_torch| = {export['torch_max_abs_diff']:.2g} on {export['checked_pairs']} pairs")
    if "int8" in export:
        q = export["int8"]
        print(f"  int8     max |P_int8 - P_fp32| = {q['max_abs_diff']:.3g} (mean {q['mean_abs_diff']:.2g}), "
              f"{q['int8_bytes'] / 1e6:.1f} MB instead of {q['fp32_bytes'] / 1e6:.1f} MB")
    return 0


def _parse_features(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            number = float(value) if sep and name.strip() else None
        except ValueError:
            number = None
        if number is None:
            raise ConfigError(f"--feature takes NAME=NUMBER, got {item!r}")
        out[name.strip()] = number
    return out


def run_score(args: argparse.Namespace) -> int:
    from ..scoring.onnx import OnnxScorer

    scorer = OnnxScorer(args.scorer)
    given = _parse_features(args.feature)
    unknown = sorted(set(given) - set(scorer.feature_names))
    if unknown:
        raise ConfigError(f"this scorer reads features {list(scorer.feature_names)}, not {unknown}")
    missing = [name for name in scorer.feature_names if name not in given]
    if missing:  # as in the Python API: leaving features out is a mistake, not "unknown"
        raise ConfigError(f"this scorer reads features {list(scorer.feature_names)}: pass "
                          + " ".join(f"--feature {name}=VALUE" for name in missing)
                          + " (VALUE nan for one that is not known)")
    features = [given] if scorer.feature_names else None
    try:
        (p,) = scorer.score([args.query], [args.answer], model=args.model, features=features)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if args.json:
        print(json.dumps({"score": p, "provider": scorer.provider}))
    else:
        print(f"P(correct) = {p:.4f}   ({scorer.provider})")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from ..scoring.onnx import OnnxScorer

    info = OnnxScorer(args.directory).describe()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    training, export, encoder = info.get("training", {}), info.get("export", {}), info.get("encoder", {})
    lines = [
        ("path", info["path"]),
        ("runs on", info["provider"] + (f"  (not CUDA: {info['why_not_cuda']})" if info.get("why_not_cuda") else "")),
        ("models", ", ".join(info["models"]) or "(any)"),
        ("encoder", f"{encoder.get('name')} ({encoder.get('source')}), "
                    f"{'fine-tuned' if encoder.get('finetuned') else 'frozen'}, max_length {info['max_length']}"
                    if "input_ids" in info["inputs"] else "none: the text is off, the graph reads the features alone"),
        ("features", ", ".join(info["feature_names"]) or "(none)"),
        ("inputs", ", ".join(info["inputs"])),
        ("quantized", "int8" if info["quantized"] else "no (float32)"),
        ("trained", f"{training.get('date')} on {training.get('rows')} rows "
                    f"({training.get('correct')} correct), data sha256 {training.get('data_sha256')}"),
        ("export", f"opset {export.get('opset')}, max |P_onnx - P_torch| {export.get('torch_max_abs_diff')}"),
    ]
    if "int8" in export:
        lines.append(("int8", f"max |P_int8 - P_fp32| {export['int8']['max_abs_diff']:.3g} "
                              f"on {export['int8']['pairs']} pairs"))
    if info.get("threshold_hints"):
        lines.append(("hints", json.dumps(info["threshold_hints"])))
    for key, value in lines:
        print(f"{key:>10}  {value}")
    return 0
