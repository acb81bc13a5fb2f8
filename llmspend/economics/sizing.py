"""How much accelerator memory a self-hosted model needs: its weights and its KV cache.

::

    weights  = parameters * bytes per parameter                       13B at fp16: 26 GB
    KV cache = 2 * layers * kv_heads * head_dim * bytes * context * batch

The 2 is one key and one value vector per layer, head and token. Models with grouped-query
attention keep fewer KV heads than query heads (Llama 3 70B: 64 query heads, 8 KV heads), so
their cache is that many times smaller. GB here are 10^9 bytes, as accelerator datasheets
count them. Activations, the CUDA context and an inference server's own buffers come on top:
leave headroom (``SizingResult.gpus`` keeps 10% free by default).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ..exceptions import ConfigError
from ._check import finite

__all__ = [
    "BYTES_PER_PARAM",
    "ModelShape",
    "MODEL_SHAPES",
    "SizingResult",
    "weights_memory_gb",
    "kv_cache_memory_gb",
    "sizing",
    "parse_params",
]

GB = 1e9

#: bytes each parameter (or cached value) takes at a precision
BYTES_PER_PARAM: dict[str, float] = {
    "fp32": 4, "float32": 4,
    "fp16": 2, "float16": 2, "bf16": 2, "bfloat16": 2,
    "fp8": 1, "int8": 1,
    "int4": 0.5, "fp4": 0.5,
}


@dataclass(frozen=True)
class ModelShape:
    """What sizing needs to know of a model. ``source``: where the numbers come from."""

    name: str
    params: float
    layers: int
    kv_heads: int
    head_dim: int
    source: str = ""

    def kv_bytes_per_token(self, precision: str = "fp16") -> float:
        return 2 * self.layers * self.kv_heads * self.head_dim * bytes_per(precision)


def _hf(repo: str) -> str:
    return f"https://huggingface.co/{repo} (config.json, model card)"


#: shapes of some open models people self-host (from each model's config.json)
MODEL_SHAPES: dict[str, ModelShape] = {
    s.name: s
    for s in (
        ModelShape("llama-2-7b", 6.74e9, 32, 32, 128, _hf("meta-llama/Llama-2-7b-hf")),
        ModelShape("llama-2-13b", 13.0e9, 40, 40, 128, _hf("meta-llama/Llama-2-13b-hf")),
        ModelShape("llama-2-70b", 69.0e9, 80, 8, 128, _hf("meta-llama/Llama-2-70b-hf")),
        ModelShape("llama-3.2-1b", 1.24e9, 16, 8, 64, _hf("meta-llama/Llama-3.2-1B")),
        ModelShape("llama-3.2-3b", 3.21e9, 28, 8, 128, _hf("meta-llama/Llama-3.2-3B")),
        ModelShape("llama-3.1-8b", 8.03e9, 32, 8, 128, _hf("meta-llama/Llama-3.1-8B")),
        ModelShape("llama-3.1-70b", 70.6e9, 80, 8, 128, _hf("meta-llama/Llama-3.1-70B")),
        ModelShape("llama-3.1-405b", 405.9e9, 126, 8, 128, _hf("meta-llama/Llama-3.1-405B")),
        ModelShape("mistral-7b", 7.24e9, 32, 8, 128, _hf("mistralai/Mistral-7B-v0.1")),
        ModelShape("mixtral-8x7b", 46.7e9, 32, 8, 128, _hf("mistralai/Mixtral-8x7B-v0.1")),
        ModelShape("qwen2.5-32b", 32.5e9, 64, 8, 128, _hf("Qwen/Qwen2.5-32B")),
        ModelShape("qwen2.5-72b", 72.7e9, 80, 8, 128, _hf("Qwen/Qwen2.5-72B")),
        ModelShape("gpt-neox-20b", 20.6e9, 44, 64, 96, _hf("EleutherAI/gpt-neox-20b")),
    )
}

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def bytes_per(precision: str) -> float:
    try:
        return BYTES_PER_PARAM[precision.strip().lower()]
    except (KeyError, AttributeError):
        raise ConfigError(
            f"unknown precision {precision!r}; use one of {', '.join(sorted(set(BYTES_PER_PARAM)))}"
        ) from None


def parse_params(params: float | int | str) -> float:
    """A parameter count: a number (``13e9``) or a size such as ``"13B"``, ``"125M"``."""
    if isinstance(params, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmbt]?)\s*", params.lower())
        if match is None:
            raise ConfigError(f"cannot read {params!r} as a parameter count; write e.g. 13B, 7.2B or 13e9")
        count = float(match.group(1)) * _SUFFIX[match.group(2)]
    else:
        count = finite("params", params)
    if count < 1e6:
        raise ConfigError(
            f"params={params!r} is {count:g} parameters; give the count (13e9) or a size with its unit ('13B')"
        )
    return count


def weights_memory_gb(params: float | int | str, precision: str = "fp16") -> float:
    """Memory the weights take: ``params * bytes per parameter``, in GB (10^9 bytes).

    >>> [weights_memory_gb("13B", p) for p in ("fp32", "fp16", "int8")]
    [52.0, 26.0, 13.0]
    """
    return parse_params(params) * bytes_per(precision) / GB


def _whole(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
    return value


def kv_cache_memory_gb(
    *,
    layers: int,
    kv_heads: int,
    head_dim: int,
    context_tokens: int,
    batch: int = 1,
    precision: str = "fp16",
) -> float:
    """KV cache for ``batch`` sequences of ``context_tokens`` each, in GB:
    ``2 * layers * kv_heads * head_dim * bytes * context_tokens * batch``."""
    return (
        2 * _whole("layers", layers) * _whole("kv_heads", kv_heads) * _whole("head_dim", head_dim)
        * bytes_per(precision) * _whole("context_tokens", context_tokens) * _whole("batch", batch) / GB
    )


@dataclass(frozen=True)
class SizingResult:
    model: str | None
    params: float
    precision: str
    weights_gb: float
    kv_precision: str
    context_tokens: int
    batch: int
    #: ``None`` when the model's shape is unknown (no KV cache figure without it)
    kv_cache_gb: float | None
    kv_bytes_per_token: float | None
    gpu_memory_gb: float | None = None
    #: share of each accelerator's memory left free for activations and the server's buffers
    headroom: float = 0.1

    @property
    def total_gb(self) -> float:
        return self.weights_gb + (self.kv_cache_gb or 0.0)

    @property
    def gpus(self) -> int | None:
        """Accelerators of ``gpu_memory_gb`` needed to hold weights and cache with headroom."""
        if self.gpu_memory_gb is None:
            return None
        return max(1, math.ceil(self.total_gb / (self.gpu_memory_gb * (1 - self.headroom))))

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "params": self.params,
            "precision": self.precision,
            "weights_gb": self.weights_gb,
            "kv_precision": self.kv_precision,
            "context_tokens": self.context_tokens,
            "batch": self.batch,
            "kv_cache_gb": self.kv_cache_gb,
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "total_gb": self.total_gb,
            "gpu_memory_gb": self.gpu_memory_gb,
            "headroom": self.headroom,
            "gpus": self.gpus,
        }


def model_shape(name: str) -> ModelShape:
    shape = MODEL_SHAPES.get(name.strip().lower())
    if shape is None:
        raise ConfigError(
            f"no shape known for model {name!r}; give params, layers, kv_heads and head_dim from its "
            f"config.json, or use one of: {', '.join(MODEL_SHAPES)}"
        )
    return shape


def sizing(
    model: str | None = None,
    *,
    params: float | int | str | None = None,
    layers: int | None = None,
    kv_heads: int | None = None,
    head_dim: int | None = None,
    precision: str = "fp16",
    kv_precision: str | None = None,
    context_tokens: int = 4096,
    batch: int = 1,
    gpu_memory_gb: float | None = None,
    headroom: float = 0.1,
) -> SizingResult:
    """Weights plus KV cache for ``model`` (a name in :data:`MODEL_SHAPES`) or for explicit
    ``params`` and shape; an explicit argument overrides the table. Without a shape only the
    weights are sized. ``kv_precision`` defaults to ``precision``."""
    shape = model_shape(model) if model else None
    count = parse_params(params) if params is not None else (shape.params if shape else None)
    if count is None:
        raise ConfigError("give a model name or params (e.g. params='13B')")
    layers = layers if layers is not None else (shape.layers if shape else None)
    kv_heads = kv_heads if kv_heads is not None else (shape.kv_heads if shape else None)
    head_dim = head_dim if head_dim is not None else (shape.head_dim if shape else None)
    kv_precision = kv_precision or precision
    _whole("context_tokens", context_tokens)
    _whole("batch", batch)
    headroom = finite("headroom", headroom)
    if headroom >= 1:
        raise ConfigError(f"headroom is the share of memory kept free, below 1; got {headroom:g}")
    gpu = None if gpu_memory_gb is None else finite("gpu_memory_gb", gpu_memory_gb)
    if gpu == 0:
        raise ConfigError("gpu_memory_gb must be > 0")
    kv_gb = per_token = None
    shape_parts = (layers, kv_heads, head_dim)
    if all(p is not None for p in shape_parts):
        assert layers is not None and kv_heads is not None and head_dim is not None
        kv_gb = kv_cache_memory_gb(layers=layers, kv_heads=kv_heads, head_dim=head_dim,
                                   context_tokens=context_tokens, batch=batch, precision=kv_precision)
        per_token = 2 * layers * kv_heads * head_dim * bytes_per(kv_precision)
    elif any(p is not None for p in shape_parts):
        raise ConfigError("the KV cache needs all of layers, kv_heads and head_dim (from the model's config.json)")
    return SizingResult(
        model=shape.name if shape else None,
        params=count,
        precision=precision.lower(),
        weights_gb=count * bytes_per(precision) / GB,
        kv_precision=kv_precision.lower(),
        context_tokens=context_tokens,
        batch=batch,
        kv_cache_gb=kv_gb,
        kv_bytes_per_token=per_token,
        gpu_memory_gb=gpu,
        headroom=headroom,
    )
