"""Training rows from files, and the hash that names a training set.

Two layouts are read:

* long: one judged answer per line. JSONL objects ``{"query", "answer", "correct"[, "model"]
  [, "features": {...} or [...]]}``, or CSV with those columns (features as columns named
  like the features, or one ``features`` column holding JSON).
* wide: one question per line with each model's outcome in ``MODEL__answer``,
  ``MODEL__correct`` and ``MODEL__FEATURE`` columns, the query in ``user_prompt`` (the layout of
  the cascade benchmark data). Reading it needs ``model=``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..exceptions import ConfigError
from .base import TrainingRow

__all__ = ["load_rows", "rows_sha256", "parse_correct"]

_TRUE = {"1", "true", "yes", "y", "t", "1.0"}
_FALSE = {"0", "false", "no", "n", "f", "0.0"}


def parse_correct(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{where}: 'correct' must be true/false or 1/0, got {value!r}")


def _number(value: Any, where: str) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: feature value {value!r} is not a number") from None


def _features(raw: Any, names: Sequence[str], where: str) -> tuple[float, ...]:
    if not names:
        return ()
    if raw is None:
        return tuple(math.nan for _ in names)
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else None
        except ValueError:
            raise ConfigError(f"{where}: 'features' is not JSON: {raw[:80]!r}") from None
        return _features(raw, names, where)
    if isinstance(raw, Mapping):
        return tuple(_number(raw.get(name), where) for name in names)
    if isinstance(raw, Sequence) and len(raw) == len(names):
        return tuple(_number(v, where) for v in raw)
    raise ConfigError(f"{where}: 'features' must be an object keyed by {list(names)} or a list of "
                      f"{len(names)} numbers, got {raw!r}")


def _long_row(record: Mapping[str, Any], names: Sequence[str], where: str) -> TrainingRow:
    missing = [key for key in ("query", "answer", "correct") if record.get(key) is None]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)} (each row needs query, answer, correct)")
    if "features" in record:
        features = _features(record["features"], names, where)
    else:  # CSV: one column per feature
        features = _features({n: record.get(n) for n in names}, names, where)
    return TrainingRow(
        query=str(record["query"]),
        answer=str(record["answer"]),
        correct=parse_correct(record["correct"], where),
        model=str(record["model"]) if record.get("model") else None,
        features=features,
    )


def _wide_rows(records: Iterable[Mapping[str, Any]], columns: Sequence[str], model: str | None,
               names: Sequence[str], path: Path) -> Iterator[TrainingRow]:
    models = sorted({c.split("__", 1)[0] for c in columns if c.endswith("__answer")})
    if model is None or model not in models:
        raise ConfigError(f"{path} has one column per model ({', '.join(models)}): choose one with "
                          f"model= (--model)" + ("" if model is None else f"; {model!r} is not among them"))
    absent = [n for n in names if f"{model}__{n}" not in columns]
    if absent:
        raise ConfigError(f"{path} has no column {model}__{absent[0]} for feature {absent[0]!r}")
    for line, record in enumerate(records, start=2):
        where = f"{path}:{line}"
        yield TrainingRow(
            query=str(record.get("user_prompt") or record.get("query") or ""),
            answer=str(record[f"{model}__answer"] or ""),
            correct=parse_correct(record[f"{model}__correct"], where),
            model=model,
            features=tuple(_number(record[f"{model}__{n}"], where) for n in names),
        )


def load_rows(path: str | Path, *, model: str | None = None, feature_names: Sequence[str] = ()) -> list[TrainingRow]:
    """Read training rows from a JSONL or CSV file (long or wide layout, see the module doc).

    ``model`` picks one model's rows (required for the wide layout); ``feature_names`` picks
    the numeric features, in order (a value that is absent reads as NaN).
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"training data {str(file)!r} does not exist")
    names = tuple(feature_names)
    rows: list[TrainingRow]
    if file.suffix.lower() == ".csv":
        with file.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            if "query" not in columns and any(c.endswith("__answer") for c in columns):
                rows = list(_wide_rows(reader, columns, model, names, file))
            else:
                absent = [n for n in names if n not in columns and "features" not in columns]
                if absent:
                    raise ConfigError(f"{file} has no column for feature {absent[0]!r} (columns: {columns})")
                rows = [_long_row(r, names, f"{file}:{i}") for i, r in enumerate(reader, start=2)]
    else:
        rows = []
        with file.open(encoding="utf-8") as handle:
            for i, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except ValueError as exc:
                    raise ConfigError(f"{file}:{i}: not a JSON object ({exc}); expected JSON lines") from None
                if not isinstance(record, dict):
                    raise ConfigError(f"{file}:{i}: expected a JSON object, got {type(record).__name__}")
                rows.append(_long_row(record, names, f"{file}:{i}"))
    if model is not None:
        rows = [r for r in rows if r.model in (None, model)]
    if not rows:
        raise ConfigError(f"{file} holds no training rows" + (f" for model {model!r}" if model else ""))
    return rows


def rows_sha256(rows: Iterable[TrainingRow]) -> str:
    """A digest of the rows' content (not of the file they came from), in order."""
    digest = hashlib.sha256()
    for row in rows:
        record = [row.query, row.answer, bool(row.correct), row.model,
                  [None if math.isnan(v) else v for v in map(float, row.features)]]
        digest.update(json.dumps(record, ensure_ascii=False, allow_nan=True).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()
