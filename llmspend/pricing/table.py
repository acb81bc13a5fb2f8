"""The price table: what one token of each kind costs, per model and provider.

Prices are kept in USD per million tokens, the unit providers publish, in a JSON file shipped
with the package (``llmspend/pricing/data/prices.json``). Every row names the page it was
taken from and the date it was checked against that page.

    >>> table = PriceTable.default()
    >>> row = table.lookup("gpt-4o-2024-08-06", provider="openai")
    >>> (row.model, row.input, row.output, row.cache_read)
    ('gpt-4o', 2.5, 10.0, 1.25)

Lookup resolves, in order: the exact model name; the name without a ``provider/`` prefix; the
name without a dated snapshot suffix (``-2024-08-06``, ``-20241022``, ``@20240620``) or
``-latest``. A snapshot that is priced differently from its alias has a row of its own, which
the exact match finds first. An unknown model gives ``None``: never a price of zero.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from ..exceptions import ConfigError

__all__ = ["ModelPrice", "LongContextPrice", "PriceTable", "normalise_model"]

#: the provider of a user's row that serves a model name whatever provider the call goes to
ANY_PROVIDER = "*"

_NOT_MEMOISED: Any = object()  # a lookup not made yet (None is a remembered "no price")

_DATE_SUFFIX = re.compile(r"(?:[-@](?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}))$|(?:-latest)$")


def normalise_model(model: str) -> str:
    """``model`` without a dated snapshot or ``-latest`` suffix."""
    return _DATE_SUFFIX.sub("", model)


@dataclass(frozen=True)
class LongContextPrice:
    """Prices that apply instead when a request's input exceeds ``threshold`` tokens."""

    threshold: int
    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    #: one-hour cache writes above the threshold (Anthropic: 2x the long-context input price)
    cache_write_1h: float | None = None


@dataclass(frozen=True)
class ModelPrice:
    """One model's prices in USD per million tokens (``per_request`` and ``tool_fees`` in USD
    per call).

    Optional prices left as ``None`` mean the provider charges the plain rate for them:
    cache reads and writes at ``input``, reasoning tokens at ``output``. Batch prices left as
    ``None`` mean the provider has no batch discount we know of for this model. A server-side
    tool missing from ``tool_fees`` has no known fee: a call that used it has an unknown cost.
    """

    model: str
    provider: str
    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    cache_write_1h: float | None = None
    batch_input: float | None = None
    batch_output: float | None = None
    reasoning: float | None = None
    per_request: float = 0.0
    long_context: LongContextPrice | None = None
    #: service-tier overrides, e.g. {"flex": {"input": ..., "output": ...}}
    tiers: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    #: a factor on every token price when the response says inference ran in that geography,
    #: e.g. {"us": 1.1} (Anthropic's US-only inference on Claude 4.6 and later)
    geo_multipliers: Mapping[str, float] = field(default_factory=dict)
    #: a factor on every token price when the response says which speed served the call,
    #: e.g. {"fast": 6.0} (Anthropic's fast mode, ``usage.speed``); a speed the row does not
    #: list, other than ``"standard"``, leaves the cost unknown
    speed_multipliers: Mapping[str, float] = field(default_factory=dict)
    #: what each call to a server-side tool costs, in USD, by llmspend's tool name (e.g.
    #: {"web_search": 0.01}); billed on top of tokens, never discounted by batch, tier, speed
    #: or geography. 0 is a fee: the provider bills the tool's calls nothing beyond tokens
    tool_fees: Mapping[str, float] = field(default_factory=dict)
    #: the page the tool fees were read on, when it is not the row's ``source``
    tool_fees_source: str = ""
    context_window: int | None = None
    max_output_tokens: int | None = None
    source: str = ""
    checked: str = ""
    aliases: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v not in (None, (), {}, "")}
        if "aliases" in out:
            out["aliases"] = list(out["aliases"])
        return out


_PRICE_FIELDS = {f.name for f in fields(ModelPrice)} - {"model", "provider"}
_NUMERIC = ("input", "output", "cache_read", "cache_write", "cache_write_1h", "batch_input",
            "batch_output", "reasoning", "per_request")


_LONG_CONTEXT_FIELDS = {f.name for f in fields(LongContextPrice)}
_TIER_FIELDS = ("input", "output", "cache_read")


def _is_price(value: object) -> bool:
    """A price in USD: a finite number >= 0 (NaN and infinity would make every sum NaN/inf)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < float("inf")


def _check_prices(where: str, raw: Mapping[str, Any], keys: Iterable[str]) -> None:
    for key in keys:
        value = raw.get(key)
        if value is not None and not _is_price(value):
            raise ConfigError(f"{where}: {key} must be a number >= 0, got {value!r}")


def _long_context(where: str, value: object) -> LongContextPrice | None:
    if value is None or isinstance(value, LongContextPrice):
        return value
    needs = ("long_context needs threshold, input, output "
             "(optional cache_read, cache_write, cache_write_1h)")
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: {needs}, as an object; got {value!r}")
    unknown = set(value) - _LONG_CONTEXT_FIELDS
    missing = {"threshold", "input", "output"} - set(value)
    if unknown or missing:
        raise ConfigError(f"{where}: {needs}; got unknown {sorted(unknown)}, missing {sorted(missing)}")
    threshold = value["threshold"]
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 0:
        raise ConfigError(f"{where}: long_context threshold must be a whole number of input tokens >= 0, got {threshold!r}")
    _check_prices(f"{where} long_context", value, _LONG_CONTEXT_FIELDS - {"threshold"})
    rates: dict[str, Any] = {k: None if v is None else float(v) for k, v in value.items() if k != "threshold"}
    return LongContextPrice(threshold=threshold, **rates)


def _tiers(where: str, value: object) -> dict[str, Mapping[str, float]]:
    if not value:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f'{where}: tiers must map a service tier to its prices, e.g. {{"flex": {{"input": 1.0}}}}; got {value!r}')
    tiers: dict[str, Mapping[str, float]] = {}
    for name, prices in value.items():
        if not isinstance(name, str) or not isinstance(prices, Mapping):
            raise ConfigError(f"{where}: tier {name!r} must map {', '.join(_TIER_FIELDS)} to prices, got {prices!r}")
        unknown = set(prices) - set(_TIER_FIELDS)
        if unknown:
            raise ConfigError(f"{where}: tier {name!r} has unknown field(s) {sorted(unknown)}; known: {list(_TIER_FIELDS)}")
        _check_prices(f"{where} tier {name!r}", prices, _TIER_FIELDS)
        tiers[name] = {k: float(v) for k, v in prices.items()}
    return tiers


def _multipliers(where: str, key: str, value: object, what: str, example: str) -> dict[str, float]:
    """A ``{name: factor}`` field (``geo_multipliers``, ``speed_multipliers``): finite factors > 0."""
    value = value or {}
    if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and k and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0
            for k, v in value.items()):
        raise ConfigError(f"{where}: {key} must map {what} to a factor > 0 (e.g. {example}), got {value!r}")
    return {k: float(v) for k, v in value.items()}


def _tool_fees(where: str, value: object) -> dict[str, float]:
    """``tool_fees``: a tool's name to its fee per call, a price in USD."""
    value = value or {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and k for k in value):
        raise ConfigError(f'{where}: tool_fees must map a tool\'s name to its fee in USD per call '
                          f'(e.g. {{"web_search": 0.01}}), got {value!r}')
    for name, fee in value.items():
        if not _is_price(fee):
            raise ConfigError(f"{where}: tool_fees[{name!r}] must be a fee in USD per call, a number >= 0, got {fee!r}")
    return {k: float(v) for k, v in value.items()}


def _row(provider: str, model: str, raw: Mapping[str, Any], defaults: Mapping[str, Any]) -> ModelPrice:
    where = f"price row {provider}/{model}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be an object of prices, got {raw!r}")
    unknown = set(raw) - _PRICE_FIELDS
    if unknown:
        raise ConfigError(f"{where} has unknown field(s) {sorted(unknown)}; known fields: {sorted(_PRICE_FIELDS)}")
    merged = {**defaults, **raw}
    if isinstance(defaults.get("tool_fees"), Mapping) and isinstance(raw.get("tool_fees"), Mapping):
        # a row names the fees it changes; the others are its provider's (or the replaced row's)
        merged["tool_fees"] = {**defaults["tool_fees"], **raw["tool_fees"]}
    for key in ("input", "output"):
        if key not in merged:
            raise ConfigError(f"{where} needs {key!r} (USD per 1M tokens)")
    _check_prices(where, merged, _NUMERIC)
    for key in ("context_window", "max_output_tokens"):
        value = merged.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise ConfigError(f"{where}: {key} must be a whole number of tokens > 0, got {value!r}")
    for key in ("source", "checked", "tool_fees_source"):
        if not isinstance(merged.get(key, ""), str):
            raise ConfigError(f"{where}: {key} must be a string, got {merged[key]!r}")
    aliases = merged.get("aliases") or ()
    if not isinstance(aliases, list | tuple) or not all(isinstance(a, str) and a for a in aliases):
        raise ConfigError(f"{where}: aliases must be a list of model names, got {aliases!r}")
    merged["long_context"] = _long_context(where, merged.get("long_context"))
    merged["aliases"] = tuple(aliases)
    merged["tiers"] = _tiers(where, merged.get("tiers"))
    merged["geo_multipliers"] = _multipliers(where, "geo_multipliers", merged.get("geo_multipliers"), "a geography", '{"us": 1.1}')
    merged["speed_multipliers"] = _multipliers(where, "speed_multipliers", merged.get("speed_multipliers"), "a speed", '{"fast": 6}')
    if "standard" in merged["speed_multipliers"]:
        # the row's own prices are the standard speed's: a factor for it would price an answer
        # that says "standard" apart from one that says nothing
        raise ConfigError(f'{where}: speed_multipliers cannot set "standard", the speed the row\'s prices are for; '
                          "change the row's prices instead")
    merged["tool_fees"] = _tool_fees(where, merged.get("tool_fees"))
    for key in _NUMERIC:
        if merged.get(key) is not None:
            merged[key] = float(merged[key])
    return ModelPrice(model=model, provider=provider, **merged)


class PriceTable:
    """Prices by provider and model. Immutable; overrides return a new table."""

    def __init__(self, rows: Iterable[ModelPrice] = ()) -> None:
        self._rows: dict[tuple[str, str], ModelPrice] = {}
        self._by_model: dict[str, list[ModelPrice]] = {}
        self._providers: set[str] = set()
        # lookups are on every call's path and a table never changes once built: memoise
        self._memo: dict[tuple[str, str | None], ModelPrice | None] = {}
        for row in rows:
            self._add(row)

    def _add(self, row: ModelPrice) -> None:
        self._memo.clear()
        replaced = self._rows.get((row.provider, row.model))
        if replaced is not None:  # its names must not keep serving the old prices
            for name in (replaced.model, *replaced.aliases):
                bucket = self._by_model.get(name, [])
                bucket[:] = [r for r in bucket if r is not replaced]
            if not row.aliases and replaced.aliases:  # a replacement that names none keeps them
                row = dataclasses.replace(row, aliases=replaced.aliases)
            if not row.tool_fees and replaced.tool_fees:  # nor its tool fees (a LiteLLM
                # file's rows carry none: its prices replace the tokens', not the tools')
                row = dataclasses.replace(row, tool_fees=replaced.tool_fees,
                                          tool_fees_source=row.tool_fees_source or replaced.tool_fees_source)
        self._rows[(row.provider, row.model)] = row
        self._providers.add(row.provider)
        for name in (row.model, *row.aliases):
            bucket = self._by_model.setdefault(name, [])
            bucket[:] = [r for r in bucket if r.provider != row.provider] + [row]

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriceTable:
        """Build from llmspend's JSON layout: ``{"providers": {provider: {model: row}}}``,
        with optional per-provider ``"_defaults"`` (e.g. the source page)."""
        providers = data.get("providers")
        if not isinstance(providers, Mapping):
            raise ConfigError('a price file needs a "providers" object: {"providers": {"openai": {"gpt-4o": {...}}}}')
        rows = []
        for provider, models in providers.items():
            if not isinstance(models, Mapping):
                raise ConfigError(f"price file: provider {provider!r} must map model names to rows")
            defaults = models.get("_defaults", {})
            if not isinstance(defaults, Mapping):
                raise ConfigError(f"price file: provider {provider!r} _defaults must be an object of fields, got {defaults!r}")
            for model, raw in models.items():
                if model != "_defaults":
                    rows.append(_row(provider, model, raw, defaults))
        return cls(rows)

    @classmethod
    def from_file(cls, path: str | Path) -> PriceTable:
        """Load a price file in llmspend's layout or LiteLLM's (detected from its shape)."""
        try:
            data = json.loads(Path(path).expanduser().read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read price file {path}: {exc}") from exc
        except ValueError as exc:
            raise ConfigError(f"price file {path} is not valid JSON: {exc}") from exc
        if isinstance(data, Mapping) and "providers" in data:
            return cls.from_dict(data)
        from .litellm import from_litellm

        return from_litellm(data)

    @classmethod
    def default(cls) -> PriceTable:
        """The table shipped with llmspend (loaded once per process)."""
        global _DEFAULT
        if _DEFAULT is None:
            text = resources.files("llmspend.pricing").joinpath("data/prices.json").read_text()
            _DEFAULT = cls.from_dict(json.loads(text))
        return _DEFAULT

    def with_overrides(self, overrides: Mapping[str, Any] | PriceTable) -> PriceTable:
        """A new table with rows added or replaced.

        ``overrides`` is another table, a dict in the file layout (``{"providers": ...}``), or
        a flat ``{model: row}`` dict; a flat row may name its ``provider`` (default: the
        provider of the row it replaces, else ``"*"``: the row then serves that model name
        whatever provider the call goes to). Fields a flat row leaves out are
        taken from the row it replaces, so ``{"gpt-4o": {"input": 2.0}}`` changes one price.
        """
        table = PriceTable(self._rows.values())
        if isinstance(overrides, PriceTable):
            for row in overrides:
                table._add(row)
            return table
        if "providers" in overrides:
            for row in PriceTable.from_dict(overrides):
                table._add(row)
            return table
        for model, raw in overrides.items():
            if not isinstance(model, str) or not model:
                raise ConfigError(f"a price override is keyed by model name, got {model!r}")
            if not isinstance(raw, Mapping):
                raise ConfigError(f"price override for {model!r} must be a dict of prices, got {type(raw).__name__}")
            raw = dict(raw)
            provider = raw.pop("provider", None)
            if provider is not None and (not isinstance(provider, str) or not provider):
                raise ConfigError(f"price override for {model!r}: provider must be a provider name, got {provider!r}")
            base = self.lookup(model, provider=provider)
            defaults: dict[str, Any] = {}
            if base is not None:
                # the row it replaces keeps its other names; a row it only resolved to does not
                # lend them (an override for a dated snapshot must not take its alias's names)
                kept = ("model", "provider") if base.model == model else ("model", "provider", "aliases")
                defaults = {k: v for k, v in base.as_dict().items() if k not in kept}
                provider = provider or base.provider
            table._add(_row(provider or ANY_PROVIDER, model, raw, defaults))
        return table

    # -- queries -----------------------------------------------------------------------
    def __iter__(self) -> Iterator[ModelPrice]:
        return iter(self._rows.values())

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def providers(self) -> frozenset[str]:
        return frozenset(self._providers)

    def lookup(self, model: str | None, provider: str | None = None) -> ModelPrice | None:
        """The row for ``model`` (see the module docstring for how names resolve).

        With a ``provider`` that has rows of its own, only its rows (and user rows for any
        provider) are considered: the same open model costs different amounts on different hosts. Otherwise the first row of any
        provider with that model name is used.
        """
        if not model:
            return None
        key = (model, provider)
        found = self._memo.get(key, _NOT_MEMOISED)
        if found is not _NOT_MEMOISED:
            return found  # type: ignore[no-any-return]
        if len(self._memo) > 4096:  # model names come from requests: keep the memo bounded
            self._memo.clear()
        found = self._memo[key] = self._lookup(model, provider)
        return found

    def _lookup(self, model: str, provider: str | None) -> ModelPrice | None:
        candidates = [model]
        if "/" in model:
            candidates.append(model.rsplit("/", 1)[-1])
        for name in list(candidates):
            bare = normalise_model(name)
            if bare != name:
                candidates.append(bare)
        scoped = provider is not None and provider in self._providers
        for name in candidates:
            rows = self._by_model.get(name)
            if not rows:
                continue
            # A bucket holds its rows in the order they were added (a replaced row moves to
            # the end), so the latest of a provider's own row and a user's any-provider row is
            # the one the user asked for last: a "*" override serves every provider, as it says.
            for row in reversed(rows):
                if row.provider == ANY_PROVIDER or (scoped and row.provider == provider):
                    return row
            if not scoped:
                return rows[0]
        return None

    def to_dict(self) -> dict[str, Any]:
        providers: dict[str, dict[str, Any]] = {}
        for row in self._rows.values():
            providers.setdefault(row.provider, {})[row.model] = {
                k: v for k, v in row.as_dict().items() if k not in ("model", "provider")
            }
        return {"schema": 1, "unit": "USD per 1M tokens", "providers": providers}


_DEFAULT: PriceTable | None = None


def coerce_prices(value: object) -> PriceTable:
    """Turn what a user passes as ``prices=`` into a table (raises ConfigError)."""
    if value is None:
        return PriceTable.default()
    if isinstance(value, PriceTable):
        return value
    if isinstance(value, str | Path):
        return PriceTable.default().with_overrides(PriceTable.from_file(value))
    if isinstance(value, Mapping):
        return PriceTable.default().with_overrides(value)
    raise ConfigError(
        f"prices= takes a PriceTable, a path to a price file, or a dict of overrides; got {type(value).__name__}"
    )
