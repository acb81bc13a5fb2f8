"""API or self-hosting: what each costs a day across request volumes, and where they cross.

An API costs the same per request at every volume::

    api(v)       = v * tokens_per_request / 1000 * usd_per_1k_tokens     (or v * usd_per_request)

Self-hosting pays for instances whatever the volume, plus per-request fees for what sits in
front of them (a serverless function, an API gateway)::

    self_host(v) = instances(v) * instance_usd_per_day + v * (serverless + gateway per request)

``instances(v)`` is the fixed count given, or, when an instance's capacity (requests a day) is
known, as many as the volume needs. The lines cross at ``v* = instances * day_price / (api per
request - fees per request)``; if fees per request are not below the API's price, or one
instance cannot serve enough requests to pay for itself, self-hosting never wins.

The worked example of "LLM Economics: ChatGPT vs Open-Source" (April 2023) is reproduced in
the tests and in docs/economics.md from its inputs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..exceptions import ConfigError
from ._check import finite as _finite

__all__ = [
    "CostPoint",
    "BreakevenResult",
    "breakeven",
    "serverless_usd_per_request",
    "DAYS_PER_YEAR",
]

DAYS_PER_YEAR = 365

# Volumes tabulated when none are given: 1, 2 and 5 per decade from 100 to 10M a day.
_DEFAULT_VOLUMES = tuple(m * 10**e for e in range(2, 8) for m in (1, 2, 5) if m * 10**e <= 10**7)


def serverless_usd_per_request(seconds: float, memory_mb: float, usd_per_gb_second: float) -> float:
    """What one invocation of a function billed per GB-second costs (AWS Lambda's model):
    ``seconds * memory_mb / 1024 * usd_per_gb_second``."""
    return (
        _finite("seconds", seconds)
        * _finite("memory_mb", memory_mb) / 1024.0
        * _finite("usd_per_gb_second", usd_per_gb_second)
    )


@dataclass(frozen=True)
class CostPoint:
    """Daily cost of each option at one volume (requests a day)."""

    requests_per_day: float
    api_usd_per_day: float
    self_host_usd_per_day: float
    instances: int

    @property
    def cheaper(self) -> str:
        if math.isclose(self.api_usd_per_day, self.self_host_usd_per_day, rel_tol=1e-12, abs_tol=1e-12):
            return "equal"
        return "api" if self.api_usd_per_day < self.self_host_usd_per_day else "self-host"

    @property
    def api_usd_per_year(self) -> float:
        return self.api_usd_per_day * DAYS_PER_YEAR

    @property
    def self_host_usd_per_year(self) -> float:
        return self.self_host_usd_per_day * DAYS_PER_YEAR

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests_per_day": self.requests_per_day,
            "api_usd_per_day": self.api_usd_per_day,
            "self_host_usd_per_day": self.self_host_usd_per_day,
            "api_usd_per_year": self.api_usd_per_year,
            "self_host_usd_per_year": self.self_host_usd_per_year,
            "instances": self.instances,
            "cheaper": self.cheaper,
        }


@dataclass(frozen=True)
class BreakevenResult:
    api_usd_per_request: float
    instance_usd_per_day: float
    #: instances paid for at any volume
    instances: int
    #: requests a day one instance serves (``None``: unlimited, as in a fixed fleet)
    requests_per_instance_per_day: float | None
    #: serverless + gateway fees per request
    self_host_usd_per_request: float
    #: requests a day from which self-hosting is cheaper; ``None``: never
    crossover_requests_per_day: float | None
    points: tuple[CostPoint, ...]

    def instances_at(self, requests_per_day: float) -> int:
        if self.requests_per_instance_per_day is None:
            return self.instances
        return max(self.instances, math.ceil(requests_per_day / self.requests_per_instance_per_day))

    def at(self, requests_per_day: float) -> CostPoint:
        v = _finite("requests_per_day", requests_per_day)
        n = self.instances_at(v)
        return CostPoint(
            requests_per_day=v,
            api_usd_per_day=v * self.api_usd_per_request,
            self_host_usd_per_day=n * self.instance_usd_per_day + v * self.self_host_usd_per_request,
            instances=n,
        )

    @property
    def crossover_requests_per_year(self) -> float | None:
        v = self.crossover_requests_per_day
        return None if v is None else v * DAYS_PER_YEAR

    def as_dict(self) -> dict[str, Any]:
        return {
            "api_usd_per_request": self.api_usd_per_request,
            "instance_usd_per_day": self.instance_usd_per_day,
            "instances": self.instances,
            "requests_per_instance_per_day": self.requests_per_instance_per_day,
            "self_host_usd_per_request": self.self_host_usd_per_request,
            "crossover_requests_per_day": self.crossover_requests_per_day,
            "crossover_requests_per_year": self.crossover_requests_per_year,
            "points": [p.as_dict() for p in self.points],
        }


def _one_of(names: str, **values: float | None) -> tuple[str, float]:
    given = {k: v for k, v in values.items() if v is not None}
    if len(given) != 1:
        raise ConfigError(f"give exactly one of {names}" + (f" (got {', '.join(given)})" if given else ""))
    return next(iter(given.items()))


def breakeven(
    *,
    api_usd_per_request: float | None = None,
    tokens_per_request: float | None = None,
    usd_per_1k_tokens: float | None = None,
    instance_usd_per_hour: float | None = None,
    instance_usd_per_day: float | None = None,
    instances: int = 1,
    requests_per_instance_per_day: float | None = None,
    serverless_usd_per_request: float = 0.0,
    gateway_usd_per_request: float = 0.0,
    volumes: Sequence[float] | None = None,
) -> BreakevenResult:
    """Daily cost of an API against self-hosting at each of ``volumes`` (requests a day), and
    the volume where self-hosting becomes cheaper.

    The API's price per request is ``api_usd_per_request`` (e.g. the mean cost of your own
    spans) or ``tokens_per_request * usd_per_1k_tokens / 1000``. An instance costs
    ``instance_usd_per_day`` or ``instance_usd_per_hour * 24``.

    >>> r = breakeven(tokens_per_request=500, usd_per_1k_tokens=0.002, instance_usd_per_day=10)
    >>> r.crossover_requests_per_day
    10000.0
    """
    if api_usd_per_request is not None and (tokens_per_request is not None or usd_per_1k_tokens is not None):
        raise ConfigError("give api_usd_per_request or tokens_per_request with usd_per_1k_tokens, not both")
    if api_usd_per_request is not None:
        api = _finite("api_usd_per_request", api_usd_per_request)
    elif tokens_per_request is not None and usd_per_1k_tokens is not None:
        api = _finite("tokens_per_request", tokens_per_request) * _finite("usd_per_1k_tokens", usd_per_1k_tokens) / 1000
    else:
        raise ConfigError("the API's price is missing: give api_usd_per_request, or tokens_per_request "
                          "and usd_per_1k_tokens")
    unit, price = _one_of("instance_usd_per_hour or instance_usd_per_day",
                          instance_usd_per_hour=instance_usd_per_hour, instance_usd_per_day=instance_usd_per_day)
    day_price = _finite(unit, price) * (24 if unit == "instance_usd_per_hour" else 1)
    if not isinstance(instances, int) or isinstance(instances, bool) or instances < 1:
        raise ConfigError(f"instances must be a whole number >= 1, got {instances!r}")
    capacity = None
    if requests_per_instance_per_day is not None:
        capacity = _finite("requests_per_instance_per_day", requests_per_instance_per_day)
        if capacity <= 0:
            raise ConfigError("requests_per_instance_per_day must be > 0 (leave it out for unlimited)")
    fees = _finite("serverless_usd_per_request", serverless_usd_per_request) + _finite(
        "gateway_usd_per_request", gateway_usd_per_request
    )

    margin = api - fees  # what self-hosting saves per request before paying for instances
    crossover: float | None = None
    if margin > 0:
        per_instance = day_price / margin  # requests a day that pay for one instance
        if capacity is None or per_instance <= capacity:
            crossover = instances * per_instance
    result = BreakevenResult(
        api_usd_per_request=api,
        instance_usd_per_day=day_price,
        instances=instances,
        requests_per_instance_per_day=capacity,
        self_host_usd_per_request=fees,
        crossover_requests_per_day=crossover,
        points=(),
    )
    wanted = sorted({_finite("volume", v) for v in (volumes if volumes is not None else _DEFAULT_VOLUMES)})
    return dataclasses.replace(result, points=tuple(result.at(v) for v in wanted))
