"""A BERT encoder in plain PyTorch, loading all-MiniLM-L6-v2's weights by their own names.

Why not ``transformers``: importing it takes seconds, and its attention code carries branches
(SDPA, flash attention, cache handling) that the ONNX exporter has to trace through. This is
the original BERT forward (Devlin et al. 2019) and nothing else, so the exported graph is small
and the same module serves both the real encoder and the tiny random one tests use. Weight
names follow the checkpoint (``embeddings.word_embeddings.weight``,
``encoder.layer.N.attention.self.query.weight``, ...) so the state dict loads as is; a test
checks its sentence embeddings against sentence-transformers' to 1e-5.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["BertConfig", "BertEncoder", "mean_pool"]


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_file(cls, path: Path) -> BertConfig:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if data.get("hidden_act", "gelu") != "gelu" or data.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: only BERT with gelu and absolute positions is supported")
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class _Embeddings(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions) + self.token_type_embeddings(token_type_ids)
        return self.LayerNorm(x)  # type: ignore[no-any-return]


class _SelfAttention(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.heads = c.num_attention_heads
        self.head_size = c.hidden_size // c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.heads, self.head_size).transpose(1, 2)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        weights = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_size) + additive_mask
        context = torch.matmul(torch.softmax(weights, dim=-1), v)
        batch, _, length, _ = context.shape
        return context.transpose(1, 2).reshape(batch, length, self.heads * self.head_size)


class _Output(nn.Module):
    """Dense, dropout, residual and LayerNorm: BertSelfOutput and BertOutput have this shape."""

    def __init__(self, c: BertConfig, width: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)  # type: ignore[no-any-return]


class _Attention(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.self = _SelfAttention(c)
        self.output = _Output(c, c.hidden_size)


class _Intermediate(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)


class _Layer(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.attention = _Attention(c)
        self.intermediate = _Intermediate(c)
        self.output = _Output(c, c.intermediate_size)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        attended = self.attention.output(self.attention.self(x, additive_mask), x)
        hidden = nn.functional.gelu(self.intermediate.dense(attended))
        return self.output(hidden, attended)  # type: ignore[no-any-return]


class _Stack(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))


class BertEncoder(nn.Module):
    """Token ids to contextual token vectors, ``(batch, length, hidden)``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = _Embeddings(config)
        self.encoder = _Stack(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        # Padding gets a large negative score before softmax (the finfo minimum would overflow
        # to -inf once added to a score, and -inf rows give NaN in fp16).
        additive = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * -10000.0
        x = self.embeddings(input_ids, token_type_ids)
        for layer in self.encoder.layer:
            x = layer(x, additive)
        return x  # type: ignore[no-any-return]

    @classmethod
    def from_pretrained(cls, directory: Path) -> BertEncoder:
        """Load ``config.json`` and ``model.safetensors`` from a checkpoint directory."""
        from safetensors.torch import load_file

        model = cls(BertConfig.from_file(directory / "config.json"))
        state = load_file(str(directory / "model.safetensors"))
        state = {k.removeprefix("bert."): v for k, v in state.items() if not k.endswith("position_ids")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        unexpected = [k for k in unexpected if not k.startswith("pooler.")]
        if missing or unexpected:
            raise ValueError(f"{directory}: weights do not match a BERT encoder (missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]})")
        return model


def mean_pool(tokens: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the real (unmasked) token vectors: sentence-transformers' mean pooling."""
    mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
    return (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
