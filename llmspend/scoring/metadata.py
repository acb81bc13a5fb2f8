"""``metadata.json``: what a scorer directory says about itself.

A scorer directory holds three files::

    model.onnx       the encoder, pooling, feature normalisation and head, as one graph
    tokenizer.json   the encoder's tokenizer (Hugging Face ``tokenizers`` format)
    metadata.json    this schema

The runtime trusts only what it needs (format, schema version, input names, features,
max_length, pad id) and checks it against the graph; the rest records where the scorer came
from (encoder, training data hash and date, export checks) for ``llmspend scorer info``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..exceptions import ConfigError

__all__ = ["FORMAT", "SCHEMA_VERSION", "ScorerMetadata", "MODEL_FILE", "TOKENIZER_FILE", "METADATA_FILE"]

FORMAT = "llmspend-scorer"
SCHEMA_VERSION = 1
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
METADATA_FILE = "metadata.json"

#: graph inputs a scorer may declare, in the order the exporter writes them
KNOWN_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "features")


@dataclass(frozen=True)
class ScorerMetadata:
    """The contents of ``metadata.json``. Unknown keys are kept in ``extra``."""

    #: graph input names, a subset of ``input_ids, attention_mask, token_type_ids, features``;
    #: ``features`` alone for a scorer whose text is off (no encoder in the graph, no tokenizer)
    inputs: tuple[str, ...]
    #: the graph's output: one logit per pair; the score is its sigmoid
    output: str = "logit"
    #: the models whose answers the scorer judges (empty: any)
    models: tuple[str, ...] = ()
    #: numeric features the scorer reads besides the text, in this order
    feature_names: tuple[str, ...] = ()
    max_length: int = 256
    pad_id: int = 0
    #: sha256 of the tokenizer's vocabulary (``PairTokenizer.vocab_sha256``); None in a
    #: directory written before it was recorded, which is then not checked
    vocab_sha256: str | None = None
    encoder: Mapping[str, Any] = field(default_factory=dict)
    quantized: bool = False
    #: sha256 of the training rows (canonical JSON lines), row counts, date, hyper-parameters
    training: Mapping[str, Any] = field(default_factory=dict)
    #: ONNX export checks: opset, max |onnx - torch|, int8 agreement
    export: Mapping[str, Any] = field(default_factory=dict)
    #: optional hints for a cascade, e.g. a threshold tuned on held-out folds
    threshold_hints: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def feature_count(self) -> int:
        return len(self.feature_names)

    @property
    def reads_text(self) -> bool:
        return "input_ids" in self.inputs

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        out: dict[str, Any] = {"format": FORMAT, **data}
        out["inputs"] = list(self.inputs)
        out["models"] = list(self.models)
        out["feature_names"] = list(self.feature_names)
        out.update(extra)
        return out

    def write(self, directory: str | Path) -> Path:
        path = Path(directory) / METADATA_FILE
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, data: Any, *, where: str = METADATA_FILE) -> ScorerMetadata:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise ConfigError(f"{where}: 'format' must be {FORMAT!r} (got {data.get('format')!r}); "
                              "is this a directory written by `llmspend scorer train`?")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ConfigError(f"{where}: schema_version {version!r} is not supported by this llmspend "
                              f"(it reads version {SCHEMA_VERSION}); retrain or upgrade llmspend")
        inputs = _strings(data.get("inputs"), "inputs", where)
        unknown = [name for name in inputs if name not in KNOWN_INPUTS]
        if unknown or ("input_ids" not in inputs and tuple(inputs) != ("features",)):
            raise ConfigError(f"{where}: 'inputs' must include input_ids (or be ['features'] alone, for a "
                              f"scorer that reads no text) and only names from {', '.join(KNOWN_INPUTS)} "
                              f"(got {list(inputs)})")
        features = _strings(data.get("feature_names", []), "feature_names", where)
        if bool(features) != ("features" in inputs):
            raise ConfigError(f"{where}: 'feature_names' {list(features)} and the 'features' input "
                              f"must come together (inputs: {list(inputs)})")
        max_length = data.get("max_length", 256)
        if not isinstance(max_length, int) or isinstance(max_length, bool) or not 8 <= max_length <= 512:
            raise ConfigError(f"{where}: 'max_length' must be an integer from 8 to 512, got {max_length!r}")
        pad_id = data.get("pad_id", 0)
        if not isinstance(pad_id, int) or isinstance(pad_id, bool) or pad_id < 0:
            raise ConfigError(f"{where}: 'pad_id' must be a token id (an integer >= 0), got {pad_id!r}")
        output = data.get("output", "logit")
        if not isinstance(output, str) or not output:
            raise ConfigError(f"{where}: 'output' must name the graph's output (e.g. \"logit\"), got {output!r}")
        quantized = data.get("quantized", False)
        if not isinstance(quantized, bool):
            raise ConfigError(f"{where}: 'quantized' must be true or false, got {quantized!r}")
        vocab = data.get("vocab_sha256")
        if vocab is not None and not isinstance(vocab, str):
            raise ConfigError(f"{where}: 'vocab_sha256' must be a hex string, got {vocab!r}")
        known = {f for f in cls.__dataclass_fields__} | {"format"}
        return cls(
            inputs=inputs,
            output=output,
            models=_strings(data.get("models", []), "models", where),
            feature_names=features,
            max_length=max_length,
            pad_id=pad_id,
            vocab_sha256=vocab,
            encoder=_object(data.get("encoder"), "encoder", where),
            quantized=quantized,
            training=_object(data.get("training"), "training", where),
            export=_object(data.get("export"), "export", where),
            threshold_hints=_object(data.get("threshold_hints"), "threshold_hints", where),
            schema_version=SCHEMA_VERSION,
            extra={k: v for k, v in data.items() if k not in known},
        )

    @classmethod
    def read(cls, directory: str | Path) -> ScorerMetadata:
        path = Path(directory) / METADATA_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path} is missing: a scorer directory needs {MODEL_FILE}, "
                              f"{TOKENIZER_FILE} and {METADATA_FILE} (see docs/scoring.md)") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path} could not be read as JSON: {exc}") from exc
        return cls.from_json(data, where=str(path))


def _strings(value: Any, key: str, where: str) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {key!r} must be a list of strings, got {value!r}")
    return tuple(value)


def _object(value: Any, key: str, where: str) -> dict[str, Any]:
    """An optional JSON object field (absent or null: empty)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: {key!r} must be a JSON object, got {value!r}")
    return dict(value)
