"""A finished batch job's results: matched to their requests by ``custom_id`` and priced at
batch rates. Pure functions over parsed lines."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .._http import Headers, Request, dumps
from ..exceptions import ResponseParseError
from ..pricing.table import PriceTable
from ..providers.base import ProviderAdapter
from ..telemetry.recorder import price_call
from .jobs import BatchRequest, BatchResult

__all__ = ["MatchedResult", "ModelCost", "match_results", "price_results"]


@dataclass(frozen=True)
class MatchedResult:
    request: BatchRequest
    #: None when the job returned nothing for this request (it expired or was cancelled first)
    result: BatchResult | None


def match_results(
    requests: Iterable[BatchRequest], results: Iterable[BatchResult]
) -> tuple[list[MatchedResult], list[BatchResult]]:
    """Each request with its result, in the input's order, and the results that answer no
    request (or answer one a second time), which are never silently dropped."""
    by_id: dict[str, BatchResult] = {}
    stray: list[BatchResult] = []
    for result in results:
        if result.custom_id in by_id:
            stray.append(result)
        else:
            by_id[result.custom_id] = result
    matched = [MatchedResult(r, by_id.pop(r.custom_id, None)) for r in requests]
    return matched, stray + list(by_id.values())


@dataclass
class ModelCost:
    """What one model's requests in a job cost. A ``None`` cost is unknown (never $0)."""

    model: str
    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    missing: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    batch_usd: float | None = 0.0
    regular_usd: float | None = 0.0
    #: False when the price table has no batch prices for the model (charged as regular)
    batch_priced: bool = True


def _add(total: float | None, part: float | None) -> float | None:
    return None if total is None or part is None else total + part


def price_results(matched: Iterable[MatchedResult], prices: PriceTable, adapter: ProviderAdapter,
                  origin: str) -> dict[str, ModelCost]:
    """Cost by model of the succeeded results, at batch prices and (for comparison) at regular
    ones, from the usage each response body reports."""
    rows: dict[str, ModelCost] = {}
    for item in matched:
        request = Request("POST", origin + item.request.url, Headers([("content-type", "application/json")]),
                          dumps(item.request.body))
        request.adapter = adapter
        call = request.call
        model = str(item.request.body.get("model") or "<none>")
        row = rows.setdefault(model, ModelCost(model))
        row.requests += 1
        result = item.result
        if result is None:
            row.missing += 1
            continue
        if not result.ok:
            row.failed += 1
            continue
        row.succeeded += 1
        outcome = None
        if call is not None:
            try:
                outcome = adapter.parse_response(call, dumps(result.body))
            except ResponseParseError:
                outcome = None
        if call is None or outcome is None or outcome.usage is None:
            row.batch_usd = row.regular_usd = None  # no usage reported: the cost cannot be known
            continue
        usage = outcome.usage
        row.input_tokens += usage.input_tokens
        row.cached_tokens += usage.cache_read_tokens
        row.output_tokens += usage.output_tokens
        batch_cost = price_call(prices, call, outcome, usage, batch=True)
        row.batch_usd = _add(row.batch_usd, batch_cost.total_usd)
        row.regular_usd = _add(row.regular_usd, price_call(prices, call, outcome, usage).total_usd)
        if batch_cost.total_usd is not None and not batch_cost.batch:
            row.batch_priced = False
    return rows
