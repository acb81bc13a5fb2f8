"""``OnnxScorer``: a trained scorer directory run by onnxruntime, on CUDA when it really works.

Provider choice. ``onnxruntime-gpu`` lists ``CUDAExecutionProvider`` as available even on a
machine without a GPU or without the CUDA libraries it was built against; asking for it there
makes onnxruntime log an error and a warning on stderr and fall back to the CPU. So CUDA is
asked for only when a quiet probe says it can start: the provider is compiled in, the NVIDIA
driver answers ``cuInit`` with at least one device, and onnxruntime's CUDA provider library and
its dependencies load. The session's own list of providers is then what ``provider`` reports,
so a fallback that still happens is reported, never hidden. ``why_not_cuda`` says why the CPU
was chosen.

Thread safety. One ``InferenceSession`` is built in ``__init__`` and only read afterwards;
onnxruntime documents ``InferenceSession.run`` as safe to call from several threads at once,
and the tokenizer is configured once and never mutated (padding is done per call, in numpy).
So a single ``OnnxScorer`` can serve every thread of an application.
"""

from __future__ import annotations

import ctypes
import functools
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    import numpy as np
except ImportError as exc:  # the runtime's own dependency: name the extra, not the module
    raise ImportError(f"llmspend's ONNX scorer needs numpy and onnxruntime: pip install 'llmspend[scorer]' ({exc})") from exc

from ..exceptions import ConfigError
from ._tokens import PairTokenizer, length_batches
from .metadata import MODEL_FILE, TOKENIZER_FILE, ScorerMetadata

if TYPE_CHECKING:
    import onnxruntime  # type: ignore[import-untyped]

__all__ = ["OnnxScorer", "FeatureRow", "feature_matrix", "cuda_unavailable_reason", "default_providers"]

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

#: one pair's numeric features: in ``feature_names`` order, or by name; None/NaN = not known
FeatureRow = Sequence[float | None] | Mapping[str, float | None]


def _onnxruntime() -> Any:
    try:
        import onnxruntime  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ConfigError("OnnxScorer needs onnxruntime: pip install 'llmspend[scorer]'") from exc
    return onnxruntime


@functools.lru_cache(maxsize=1)
def cuda_unavailable_reason() -> str | None:
    """Why onnxruntime's CUDA provider cannot run here, or None when it can.

    Probes without asking onnxruntime, so nothing is logged. Cached: the answer does not change
    while the process lives.
    """
    ort = _onnxruntime()
    if CUDA not in ort.get_available_providers():
        return "this onnxruntime build has no CUDAExecutionProvider (install onnxruntime-gpu for GPUs)"
    if not sys.platform.startswith("linux"):
        return None  # no quiet probe there; the session's providers tell what ran
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no NVIDIA driver (libcuda.so.1 cannot be loaded)"
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
        return "the NVIDIA driver reports no usable CUDA device"
    library = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"
    if library.exists():
        try:
            ctypes.CDLL(str(library))
        except OSError as exc:
            return f"onnxruntime's CUDA provider cannot load its libraries ({exc})"
    return None


def default_providers() -> list[str]:
    """CUDA then CPU where CUDA can start, else the CPU alone."""
    return [CUDA, CPU] if cuda_unavailable_reason() is None else [CPU]


class OnnxScorer:
    """Scores (query, answer) pairs with a scorer directory; implements :class:`Scorer`.

    ``providers`` overrides the automatic choice (e.g. ``["CPUExecutionProvider"]``);
    ``threads`` caps onnxruntime's intra-op threads (default: onnxruntime's own choice);
    ``batch_size`` is how many pairs go through the graph at once.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        batch_size: int = 32,
    ) -> None:
        directory = Path(path)
        if not directory.is_dir():
            raise ConfigError(f"scorer directory {str(directory)!r} does not exist or is not a directory; "
                              "train one with `llmspend scorer train --data FILE --out DIR`")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be at least 1 (or None for onnxruntime's default), got {threads}")
        if not (directory / MODEL_FILE).is_file():
            raise ConfigError(f"{directory / MODEL_FILE} is missing: a scorer directory needs {MODEL_FILE}, "
                              f"{TOKENIZER_FILE} and metadata.json (see docs/scoring.md)")
        self.path = directory
        self.metadata = ScorerMetadata.read(directory)
        self.models: tuple[str, ...] = self.metadata.models
        self.feature_names: tuple[str, ...] = self.metadata.feature_names
        self.batch_size = batch_size
        self._tokens: PairTokenizer | None = None
        if self.metadata.reads_text:  # a scorer of the features alone has no tokenizer
            if not (directory / TOKENIZER_FILE).is_file():
                raise ConfigError(f"{directory / TOKENIZER_FILE} is missing: a scorer that reads text needs "
                                  f"{MODEL_FILE}, {TOKENIZER_FILE} and metadata.json (see docs/scoring.md)")
            self._tokens = PairTokenizer.from_file(
                directory / TOKENIZER_FILE, max_length=self.metadata.max_length, pad_id=self.metadata.pad_id
            )
            recorded = self.metadata.vocab_sha256
            if recorded is not None and self._tokens.vocab_sha256() != recorded:
                raise ConfigError(f"{directory / TOKENIZER_FILE} does not belong with {MODEL_FILE}: its vocabulary is "
                                  "not the one the scorer was trained with (metadata.json vocab_sha256); copy the "
                                  "tokenizer.json written by `llmspend scorer train` with the model")
        self._session, self.why_not_cuda = _build_session(directory / MODEL_FILE, providers, threads)
        #: the execution provider that runs the graph (reported as ``llmspend.scorer.provider``)
        self.provider: str = self._session.get_providers()[0]
        self._check_graph()

    def _check_graph(self) -> None:
        meta = self.metadata
        graph_inputs = {i.name: i for i in self._session.get_inputs()}
        if set(graph_inputs) != set(meta.inputs):
            raise ConfigError(f"{self.path}: metadata.json lists inputs {sorted(meta.inputs)} but "
                              f"{MODEL_FILE} takes {sorted(graph_inputs)}; the files do not belong together")
        outputs = [o.name for o in self._session.get_outputs()]
        if meta.output not in outputs:
            raise ConfigError(f"{self.path}: metadata.json names output {meta.output!r} but {MODEL_FILE} "
                              f"has {outputs}")
        if "features" in graph_inputs:
            width = graph_inputs["features"].shape[-1]
            if isinstance(width, int) and width != meta.feature_count:
                raise ConfigError(f"{self.path}: {MODEL_FILE} takes {width} features but metadata.json "
                                  f"names {meta.feature_count}: {list(meta.feature_names)}")

    def __repr__(self) -> str:
        return f"OnnxScorer({str(self.path)!r}, provider={self.provider!r}, models={list(self.models)})"

    def score(
        self,
        queries: Sequence[str],
        answers: Sequence[str],
        *,
        model: str | None = None,
        features: Sequence[FeatureRow] | None = None,
    ) -> list[float]:
        """P(correct) for each (query, answer) pair, in order.

        ``model`` is checked against the models the scorer was trained for (when it names
        any). ``features`` gives one row per pair when the scorer reads features; a value that
        is None or NaN (e.g. no log-probability came back) is replaced by the training mean, and
        infinities are clipped to the range seen in training. A row by name that names a feature
        the scorer does not read raises ``ValueError``.
        """
        count = len(queries)
        if model is not None and self.models and model not in self.models:
            raise ValueError(f"this scorer judges answers of {list(self.models)}, not {model!r}")
        if len(answers) != count:
            raise ValueError(f"got {count} queries but {len(answers)} answers; they pair up one to one")
        matrix = feature_matrix(features, self.feature_names, count)
        if count == 0:
            return []
        logits = np.empty(count, dtype=np.float64)
        if self._tokens is None:  # the features alone
            assert matrix is not None
            for start in range(0, count, self.batch_size):
                (out,) = self._session.run([self.metadata.output], {"features": matrix[start:start + self.batch_size]})
                logits[start:start + self.batch_size] = np.asarray(out, dtype=np.float64).reshape(-1)
            return [float(p) for p in sigmoid(logits)]
        encodings = self._tokens.encode(queries, answers)
        wanted = self.metadata.inputs
        for index in length_batches(encodings, self.batch_size):
            arrays = self._tokens.arrays([encodings[i] for i in index])
            feeds = {name: arrays[name] for name in wanted if name != "features"}
            if matrix is not None:
                feeds["features"] = matrix[index]
            (out,) = self._session.run([self.metadata.output], feeds)
            logits[index] = np.asarray(out, dtype=np.float64).reshape(-1)
        return [float(p) for p in sigmoid(logits)]

    def describe(self) -> dict[str, Any]:
        """What ``llmspend scorer info`` shows: the metadata plus where it runs."""
        info = self.metadata.to_json()
        info["path"] = str(self.path)
        info["provider"] = self.provider
        if self.why_not_cuda:
            info["why_not_cuda"] = self.why_not_cuda
        return info


def feature_matrix(features: Sequence[FeatureRow] | None, names: Sequence[str], count: int) -> np.ndarray | None:
    """``features`` as a float32 ``(count, len(names))`` array (NaN = not known), checked."""
    if not names:
        if features is not None and any(len(row) for row in features):
            raise ValueError("this scorer reads no features; pass features=None")
        return None
    if features is None:
        raise ValueError(f"this scorer reads features {list(names)}: pass one row per pair "
                         "(None or NaN for a value that is not known)")
    if len(features) != count:
        raise ValueError(f"got {len(features)} feature rows for {count} pairs")
    matrix = np.full((count, len(names)), np.nan, dtype=np.float32)
    for i, row in enumerate(features):
        if isinstance(row, Mapping):
            unknown = sorted(set(row) - set(names))
            if unknown:  # a misspelt name would otherwise read as "not known"
                raise ValueError(f"feature row {i} has unknown features {unknown}; this scorer reads {list(names)}")
            values = [row.get(name) for name in names]
        else:
            values = list(row)
            if len(values) != len(names):
                raise ValueError(f"feature row {i} has {len(values)} values; expected {len(names)}: {list(names)}")
        with np.errstate(over="ignore"):  # past float32's range is +-inf, which the graph clips
            matrix[i] = [math.nan if v is None else float(v) for v in values]
    return matrix


def _build_session(
    model: Path, providers: Sequence[str] | None, threads: int | None
) -> tuple[onnxruntime.InferenceSession, str | None]:
    ort = _onnxruntime()
    reason = cuda_unavailable_reason()
    if providers is None:
        chosen = default_providers()
    else:
        available = ort.get_available_providers()
        missing = [p for p in providers if p not in available]
        if missing or not providers:
            raise ConfigError(f"providers {list(providers)} are not all available in this onnxruntime "
                              f"(available: {available})")
        chosen = list(providers)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no per-node placement warnings on the GPU
    if threads is not None:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(model), sess_options=options, providers=chosen)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ConfigError(f"{model} could not be loaded by onnxruntime: {exc}") from exc
    ran = session.get_providers()[0]
    if ran != CUDA and CUDA in chosen:
        reason = "CUDA was requested but onnxruntime fell back to the CPU" + (f": {reason}" if reason else "")
    elif CUDA not in chosen and providers is not None:
        reason = f"providers={list(providers)} did not ask for {CUDA}" + (f" ({reason})" if reason else "")
    return session, (reason if ran != CUDA else None)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function without overflow for large |x|."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * x)), dtype=np.float64)
