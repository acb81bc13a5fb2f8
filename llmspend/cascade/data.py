"""Per-query outcomes of several models, the table a cascade is fitted and evaluated on.

Two input formats become one :class:`OutcomeTable` (rows: queries, columns: models):

**Wide CSV** (``../shared/data/cascade``): one row per query, a ``user_prompt`` (or
``query``) column, and for each model ``M`` the columns ``M__answer``, ``M__correct`` (1/0,
true/false or yes/no, as ``llmspend scorer train`` reads them), ``M__cost_usd`` and,
optionally, ``M__conf_raw`` (the provider's log-probability of the answer). Other columns
(``qid``, ``gold``, ``M__latency_ms``, ...) are ignored; ``qid`` names the row when present.

**JSONL of logged calls** (your own traffic): one JSON object per line, one line per call::

    {"id": "q17", "query": "...", "model": "gpt-4o-mini", "answer": "...", "correct": true,
     "cost_usd": 0.00012, "conf_raw": -0.03}

``correct`` is read like ``M__correct``. ``id`` (optional, default: the query text) groups the
calls of one query; ``cost_usd`` may be replaced by ``input_tokens`` and ``output_tokens``,
priced with llmspend's price table; ``conf_raw`` is optional. A query must have an outcome for
every model the fit uses: queries missing some are dropped and counted (``dropped``). When a
query has two calls to one model the first one counts.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigError
from ..scoring.data import parse_correct

try:
    import numpy as np
except ImportError as exc:  # pragma: no cover - numpy is in the cascade extra
    raise ConfigError("fitting or evaluating a cascade needs numpy: pip install 'llmspend[cascade]'") from exc

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ..pricing.table import PriceTable

__all__ = ["OutcomeTable", "load_table", "load_wide_csv", "load_calls_jsonl"]

_SUFFIXES = ("answer", "correct", "cost_usd", "conf_raw")


@dataclass(frozen=True, eq=False)
class OutcomeTable:
    """What each model answered to each query, whether it was right, and what it cost."""

    ids: tuple[str, ...]
    queries: tuple[str, ...]
    models: tuple[str, ...]
    #: ``answers[i][j]``: model ``j``'s answer to query ``i``
    answers: tuple[tuple[str, ...], ...]
    correct: NDArray[np.float64]  #: (queries, models), 1.0 or 0.0
    cost: NDArray[np.float64]  #: (queries, models), USD
    conf: NDArray[np.float64]  #: (queries, models), log-probability; NaN when missing
    source: str = ""
    sha256: str = ""
    #: queries dropped because some model's outcome was missing
    dropped: int = 0
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.queries)

    def index(self, model: str) -> int:
        try:
            return self.models.index(model)
        except ValueError:
            raise ConfigError(f"model {model!r} is not in {self.source or 'the data'}; it has {', '.join(self.models)}") from None

    def select(self, models: Sequence[str]) -> OutcomeTable:
        """The same queries with only ``models``, in that order."""
        cols = [self.index(m) for m in models]
        return OutcomeTable(
            self.ids, self.queries, tuple(models),
            tuple(tuple(row[c] for c in cols) for row in self.answers),
            self.correct[:, cols], self.cost[:, cols], self.conf[:, cols],
            self.source, self.sha256, self.dropped, self.meta,
        )

    def rows(self, index: Sequence[int] | NDArray[np.intp]) -> OutcomeTable:
        idx = [int(i) for i in index]
        return OutcomeTable(
            tuple(self.ids[i] for i in idx), tuple(self.queries[i] for i in idx), self.models,
            tuple(self.answers[i] for i in idx),
            self.correct[idx], self.cost[idx], self.conf[idx],
            self.source, self.sha256, self.dropped, self.meta,
        )

    def singles(self) -> list[dict[str, Any]]:
        """Each model alone: accuracy and mean USD per query."""
        return [
            {"model": m, "accuracy": float(self.correct[:, j].mean()), "cost_usd_per_query": float(self.cost[:, j].mean())}
            for j, m in enumerate(self.models)
        ]

    def best_single(self) -> dict[str, Any]:
        """The most accurate model alone (the cheaper one on a tie)."""
        return max(self.singles(), key=lambda s: (s["accuracy"], -s["cost_usd_per_query"]))


def load_table(
    path: str | Path, *, models: Sequence[str] | None = None, prices: PriceTable | None = None
) -> OutcomeTable:
    """Read a wide CSV (``.csv``) or a JSONL of logged calls (``.jsonl``/``.json``), keeping
    ``models`` (default: every model in the file) and the queries that have all of them."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return load_wide_csv(path, models=models)
    if suffix in (".jsonl", ".json", ".ndjson"):
        return load_calls_jsonl(path, models=models, prices=prices)
    raise ConfigError(f"{path}: give a wide .csv or a .jsonl of logged calls (see docs/cascade.md)")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _float(value: Any, what: str) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: {value!r} is not a number") from None


def _cost(value: Any, what: str) -> float:
    cost = _float(value, what)
    if cost < 0:
        raise ConfigError(f"{what}: {value!r} is negative; a cost is 0 or more USD")
    return cost


def _tokens(value: Any, what: str) -> int:
    number = _float(value, what)
    if not (number >= 0 and number.is_integer()):
        raise ConfigError(f"{what}: {value!r} is not a count of tokens")
    return int(number)


def _correct(value: Any, what: str) -> float:
    """1.0 or 0.0, read as ``llmspend scorer train`` reads it (true/false, 1/0, yes/no); NaN
    when the outcome was not judged (the query is then dropped)."""
    if value is None or str(value).strip().lower() in ("", "nan"):
        return math.nan
    return float(parse_correct(value, what))


def load_wide_csv(path: str | Path, *, models: Sequence[str] | None = None) -> OutcomeTable:
    path = Path(path)
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # answers can be long
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        query_col = next((c for c in ("user_prompt", "query", "prompt") if c in header), None)
        if query_col is None:
            raise ConfigError(f"{path}: no user_prompt (or query) column; see docs/cascade.md for the wide CSV format")
        found = [c[: -len("__correct")] for c in header if c.endswith("__correct")]
        if not found:
            raise ConfigError(f"{path}: no M__correct columns; each model M needs M__answer, M__correct, M__cost_usd")
        models = _chosen(models, found, path)
        for m in models:
            for suffix in ("answer", "cost_usd"):
                if f"{m}__{suffix}" not in header:
                    raise ConfigError(f"{path}: model {m!r} has no {m}__{suffix} column")
        has_conf = {m: f"{m}__conf_raw" in header for m in models}
        records = []
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            records.append((
                row.get("qid") or str(line - 1),
                row[query_col] or "",
                {
                    m: (
                        row[f"{m}__answer"] or "",
                        _correct(row[f"{m}__correct"], f"{where} {m}__correct"),
                        _cost(row[f"{m}__cost_usd"], f"{where} {m}__cost_usd"),
                        _float(row[f"{m}__conf_raw"], f"{where} {m}__conf_raw") if has_conf[m] else math.nan,
                    )
                    for m in models
                },
            ))
    return _build(records, models, source=str(path), sha256=_sha256(path))


def load_calls_jsonl(
    path: str | Path, *, models: Sequence[str] | None = None, prices: PriceTable | None = None
) -> OutcomeTable:
    path = Path(path)
    grouped: dict[str, tuple[str, dict[str, tuple[str, float, float, float]]]] = {}
    seen: list[str] = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                call = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{where}: not JSON ({exc})") from None
            if not isinstance(call, dict):
                raise ConfigError(f"{where}: each line must be a JSON object")
            for key in ("query", "model", "answer", "correct"):
                if key not in call:
                    raise ConfigError(f"{where}: missing {key!r} (a logged call needs query, model, answer, correct, cost_usd)")
            query, model, answer = call["query"], call["model"], call["answer"]
            if not all(isinstance(v, str) for v in (query, model, answer)):
                raise ConfigError(f"{where}: query, model and answer must be strings")
            if model not in seen:  # every model in the file, to name them when a chosen one is not
                seen.append(model)
            if models is not None and model not in models:
                continue
            cost = _call_cost(call, model, where, prices)
            qid = str(call.get("id", query))
            entry = grouped.setdefault(qid, (query, {}))
            entry[1].setdefault(
                model,
                (answer, _correct(call["correct"], f"{where} correct"), cost,
                 _float(call.get("conf_raw"), f"{where} conf_raw")),
            )
    if not grouped:
        raise ConfigError(f"{path}: no logged calls")
    records = [(qid, query, outcomes) for qid, (query, outcomes) in grouped.items()]
    return _build(records, _chosen(models, seen, path), source=str(path), sha256=_sha256(path))


def _chosen(models: Sequence[str] | None, found: Sequence[str], path: Path) -> list[str]:
    if models is None:
        return list(found)
    missing = [m for m in models if m not in found]
    if missing:
        raise ConfigError(f"{path}: no outcomes for {', '.join(missing)}; it has {', '.join(found)}")
    if len(set(models)) != len(models):
        raise ConfigError(f"a model is named twice in {list(models)}")
    return list(models)


def _call_cost(call: Mapping[str, Any], model: str, where: str, prices: PriceTable | None) -> float:
    if call.get("cost_usd") is not None:
        return _cost(call["cost_usd"], f"{where} cost_usd")
    if call.get("input_tokens") is None or call.get("output_tokens") is None:
        raise ConfigError(f"{where}: give cost_usd, or input_tokens and output_tokens to price with the price table")
    from ..pricing.cost import price_usage
    from ..pricing.table import PriceTable
    from ..providers.base import Usage

    table = prices or PriceTable.default()
    row = table.lookup(model, provider=call.get("provider"))
    if row is None:
        raise ConfigError(f"{where}: no price for model {model!r}; log cost_usd or add the model to the price table")
    usage = Usage(input_tokens=_tokens(call["input_tokens"], f"{where} input_tokens"),
                  output_tokens=_tokens(call["output_tokens"], f"{where} output_tokens"))
    total = price_usage(usage, row).total_usd
    if total is None:  # pragma: no cover - a priced row always gives a total
        raise ConfigError(f"{where}: could not price {model!r}")
    return total


def _build(
    records: Iterable[tuple[str, str, Mapping[str, tuple[str, float, float, float]]]],
    models: Sequence[str],
    *,
    source: str,
    sha256: str,
) -> OutcomeTable:
    ids: list[str] = []
    queries: list[str] = []
    answers: list[tuple[str, ...]] = []
    values: list[list[tuple[float, float, float]]] = []
    dropped = 0
    for qid, query, outcomes in records:
        row = [outcomes.get(m) for m in models]
        if any(o is None or math.isnan(o[1]) or math.isnan(o[2]) for o in row):
            dropped += 1
            continue
        ids.append(qid)
        queries.append(query)
        answers.append(tuple(o[0] for o in row if o is not None))
        values.append([(o[1], o[2], o[3]) for o in row if o is not None])
    if not ids:
        raise ConfigError(f"{source}: no query has an outcome (answer, correct, cost) for every model ({', '.join(models)})")
    array = np.asarray(values, dtype=np.float64).reshape(len(ids), len(models), 3)
    return OutcomeTable(
        tuple(ids), tuple(queries), tuple(models), tuple(answers),
        array[:, :, 0].copy(), array[:, :, 1].copy(), array[:, :, 2].copy(),
        source=source, sha256=sha256, dropped=dropped,
    )
