"""(query, answer) pairs to padded id arrays, shared by the runtime and the trainer.

A pair is encoded the way BERT reads two segments: ``[CLS] query [SEP] answer [SEP]``, token
type 0 for the query and 1 for the answer, cut to ``max_length`` by trimming the longer
segment first. Padding is done here per batch (to the longest pair in it), not by the
tokenizer, so the shared ``Tokenizer`` is never mutated after construction and can be used from
many threads at once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..exceptions import ConfigError

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer

__all__ = ["PairTokenizer"]

IdArrays = dict[str, "np.ndarray"]


class PairTokenizer:
    """Encodes pairs; ``arrays`` pads a batch of encodings into int64 arrays."""

    def __init__(self, tokenizer: Tokenizer, *, max_length: int, pad_id: int = 0) -> None:
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length, strategy="longest_first")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pad_id = pad_id

    @classmethod
    def from_file(cls, path: str | Path, *, max_length: int, pad_id: int = 0) -> PairTokenizer:
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigError("scorers need the 'tokenizers' package: pip install 'llmspend[scorer]'") from exc
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust side raises a bare Exception for a bad file
            raise ConfigError(f"{path} is not a tokenizers JSON file: {exc}") from exc
        return cls(tokenizer, max_length=max_length, pad_id=pad_id)

    def vocab_sha256(self) -> str:
        """A hash of the vocabulary (token -> id, added tokens included): the ids the encoder's
        embedding was trained on. Another tokenizer.json gives other ids, which score silently
        wrong (or fail inside the graph), so the runtime compares this with the metadata's."""
        vocab = sorted(self.tokenizer.get_vocab(with_added_tokens=True).items())
        return hashlib.sha256(json.dumps(vocab, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()

    def save(self, path: str | Path) -> None:
        """Write tokenizer.json without padding or truncation: the runtime sets both."""
        self.tokenizer.save(str(path))

    def encode(self, queries: Sequence[str], answers: Sequence[str]) -> list[Encoding]:
        if len(queries) != len(answers):
            raise ValueError(f"got {len(queries)} queries but {len(answers)} answers; they pair up one to one")
        return self.tokenizer.encode_batch(list(zip(queries, answers)))

    def arrays(self, encodings: Sequence[Encoding]) -> IdArrays:
        """``input_ids``, ``attention_mask``, ``token_type_ids`` padded to the longest encoding."""
        width = max(len(e.ids) for e in encodings)
        shape = (len(encodings), width)
        ids = np.full(shape, self.pad_id, dtype=np.int64)
        mask = np.zeros(shape, dtype=np.int64)
        types = np.zeros(shape, dtype=np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            mask[row, :n] = enc.attention_mask
            types[row, :n] = enc.type_ids
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def length_batches(encodings: Sequence[Encoding], batch_size: int) -> list[list[int]]:
    """Indexes grouped into batches of similar length, so little of each batch is padding."""
    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
