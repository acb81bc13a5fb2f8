"""The cache stage: a repeated call answered from a cache, without a request leaving the machine.

It sits inside telemetry (order 400; telemetry's 200 is nearer the caller), so a hit still
gets its span: the stage marks the call ``served_from = "cache"`` and hands back the stored
answer, and telemetry prices the stored usage as the saving (``llmspend.cost.saved_usd``) and
reports cost 0. Every call the stage sees gets ``llmspend.cache.hit``, and
``llmspend.cache.status`` says what happened: ``hit``, ``miss``, ``refresh``, ``skip`` or
``uncacheable``.

- **What is cached.** Successful (2xx) answers of requests the policy accepts: by default
  reproducible ones (embeddings, temperature 0, a fixed seed). Streams are recorded as they pass
  and stored only when the provider's end-of-answer event arrived; a hit replays the same chunks.
- **Per request.** ``x-llmspend-cache: skip | refresh | always``, ``x-llmspend-cache-ttl:
  SECONDS`` and ``x-llmspend-cache-namespace: NAME`` (e.g. ``extra_headers=`` in the SDKs);
  they are removed before the request is sent.
- **Keys** are scoped by credential or namespace (:mod:`llmspend.cache.keys`) and take in
  what the provider adapter says changes the answer (its ``vary_headers`` and
  ``cache_key_body``); entries are JSON (:mod:`llmspend.cache.entry`).
- **Fail open.** A backend fault or a corrupt entry never fails the call: it goes to the
  provider, ``llmspend.cache.error`` is set on the span and a warning is logged once.

Telemetry asks streams for usage on the caller's behalf (``stream_options.include_usage``),
so a stored stream carries the usage chunk; on a replay to a caller who did not ask for usage,
telemetry's stream reader removes it again, exactly as for a live stream, so callers with and
without usage share one entry. Requests that reach the cache with and without the usage
chunk asked for (telemetry off) are keyed apart: each gets the bytes it asked for.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, NamedTuple

from .._redact import error_text
from .._http import Headers, Request, Response
from ..cache.base import CacheBackend
from ..cache.config import CacheConfig, open_backend
from ..cache.entry import Entry, decode_entry, encode_entry, stored_headers
from ..cache.keys import (
    CONTROL_HEADER,
    Controls,
    cache_key,
    read_controls,
    scope_digest,
    vary_values,
    without_controls,
)
from ..cache.streams import AsyncRecordingStream, RecordingStream, ReplayStream
from ..exceptions import ConfigError, CorruptCacheEntryError, ResponseParseError
from ..pipeline import AsyncCallNext, BuildContext, CallNext, Stage, StageSpec
from ..pricing.table import PriceTable
from ..providers.base import Call, Outcome, ProviderAdapter
from ..telemetry.recorder import price_call, warn_once

__all__ = ["CacheStage", "SPEC"]

HIT = "llmspend.cache.hit"
STATUS = "llmspend.cache.status"
STORED = "llmspend.cache.stored"
AGE = "llmspend.cache.age_s"

# Persistent counters are written at most this often (and when the client closes).
_FLUSH_INTERVAL_S = 1.0


class _Plan(NamedTuple):
    """What the stage does with one request."""

    key: str
    lookup: bool
    store: bool
    ttl_s: float | None
    #: the request to send on a miss (without the control headers)
    outgoing: Request


class _Counts:
    """Counters for ``llmspend cache stats``, summed in memory and written out now and then."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}
        self._last = time.monotonic()
        _ALL_COUNTS.add(self)

    def add(self, name: str, saved_usd: float = 0.0) -> dict[str, float] | None:
        """Count one ``name`` (and a saving); return what to write out when it is time to."""
        with self._lock:
            pending = self._pending
            pending[name] = pending.get(name, 0) + 1
            if saved_usd:
                pending["saved_usd"] = pending.get("saved_usd", 0.0) + saved_usd
            now = time.monotonic()
            if now - self._last < _FLUSH_INTERVAL_S:
                return None
            self._last = now
            due, self._pending = self._pending, {}
            return due

    def note(self, name: str) -> None:
        """Count one ``name`` without writing out: for callers that have no way to write (a
        fault, counted where the stage cannot wait on the backend); the next due add takes it."""
        with self._lock:
            self._pending[name] = self._pending.get(name, 0) + 1

    def take(self) -> dict[str, float]:
        with self._lock:
            due, self._pending = self._pending, {}
            return due

    def forget(self) -> None:
        """Drop what is pending, and start over with a fresh lock: a forked child's copy of its
        parent's counts is the parent's to write (and the lock may have been held at the fork)."""
        self._lock = threading.Lock()
        self._pending = {}


# Counts not yet written when the process forks belong to the parent; a child that wrote its
# copy too would count those calls twice.
_ALL_COUNTS: weakref.WeakSet[_Counts] = weakref.WeakSet()


def _forget_all_pending() -> None:
    for counts in list(_ALL_COUNTS):
        counts.forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_all_pending)


def _write_pending(counts: _Counts, backend: CacheBackend) -> None:
    """Write out what ``counts`` holds: when a stage that was never closed is collected, or
    the process exits (most apps never close their client; up to a second of counts would be
    lost). Bookkeeping only: a backend that is gone by then costs the counts, nothing else."""
    due = counts.take()
    if due:
        try:
            backend.add_counts(due)
        except Exception:
            pass


def lookup_status(mode: str | None, cacheable: bool) -> str:
    """What to do with a request: ``lookup`` (read, and write on a miss), ``refresh`` (write
    only), ``skip`` or ``uncacheable`` (neither), from its control header and the policy."""
    if mode in ("skip", "refresh"):
        return mode
    return "lookup" if mode == "always" or cacheable else "uncacheable"


def stream_outcome(adapter: ProviderAdapter, call: Call, request: Request, chunks: list[bytes]) -> Outcome:
    """What a recorded stream says; ``complete`` only if the provider's end event is in it."""
    reader = adapter.stream_reader(call, request)
    for chunk in chunks:
        reader.feed(chunk)
    reader.flush()
    return reader.outcome(complete=False)


class CacheStage(Stage):
    """See the module docstring. ``owns_backend``: close the backend when the client closes
    (true for one the stage opened from a path or URL, false for one the user passed in)."""

    name = "cache"

    def __init__(
        self,
        backend: CacheBackend,
        config: CacheConfig | None = None,
        *,
        prices: PriceTable | None = None,
        owns_backend: bool = False,
    ) -> None:
        self.backend = backend
        self.config = config if config is not None else CacheConfig(backend)
        self.prices = prices if prices is not None else PriceTable.default()
        self._should_cache = self.config.should_cache
        self._owns_backend = owns_backend
        self._counts = _Counts()
        # runs at exit too (atexit), unless close() ran first
        self._at_exit = weakref.finalize(self, _write_pending, self._counts, backend)

    # -- decisions ---------------------------------------------------------------------
    def _plan(self, request: Request) -> _Plan | None:
        controls = read_controls(request.headers)
        outgoing = request.replace(headers=without_controls(request.headers)) if controls.present else request
        call = request.call
        if call is None or not isinstance(call.body, Mapping):
            return None if not controls.present else _Plan("", False, False, None, outgoing)
        if controls.error is not None:  # the caller's mistake, not the backend's: warned apart
            self._fault(request, ConfigError(controls.error), where="the request's cache headers")
        wanted = False
        if controls.mode is None:
            try:
                wanted = bool(self._should_cache(call))
            except Exception as exc:  # a policy of the user's that raises never fails the call
                request.context.record_fault(self.name, exc)
                warn_once(("cache-policy", type(exc).__name__),
                          "llmspend: the cache policy raised %s; such calls are not cached", type(exc).__name__)
        status = lookup_status(controls.mode, wanted)
        if status != "lookup":
            request.context.set_attributes({HIT: False, STATUS: status})
        if status in ("skip", "uncacheable"):
            return _Plan("", False, False, None, outgoing)
        adapter = request.adapter
        assert adapter is not None  # a request has a call only through its adapter
        vary = vary_values(request.headers, adapter.vary_headers) if adapter.vary_headers else ()
        body = adapter.cache_key_body(request, call)
        key = cache_key(call.provider, call.endpoint, request.url, body, self._scope(controls), vary)
        ttl = controls.ttl_s if controls.ttl_s is not None else self.config.ttl_s
        return _Plan(key, status == "lookup", True, ttl, outgoing)

    def _scope(self, controls: Controls) -> str:
        return scope_digest(controls.credential, self.config.namespace, controls.namespace)

    # -- shared bookkeeping ------------------------------------------------------------
    def _fault(self, request: Request, exc: BaseException, *, where: str | None = None) -> None:
        """Record a fault on the call's span, count it, and warn once per backend (or once per
        ``where``: a fault of the request's own, so that it cannot hide a later backend outage)."""
        request.context.record_fault(self.name, exc)
        self._counts.note("errors")  # add() could return counts due, and they would be lost
        place = where if where is not None else self.backend.describe()
        warn_once(
            ("cache", self.backend.kind, place),
            "llmspend: cache fault at %s (%s); calls go on to the provider without the cache",
            place,
            error_text(exc),
        )

    def _read(self, request: Request, data: bytes | None, error: BaseException | None) -> tuple[Response | None, bool, dict[str, float] | None]:
        """Turn a lookup's result into the answer to hand back, and count it. Returns the
        response (None: go to the provider), whether to delete a corrupt entry, and the counters
        due to be written. Anything that goes wrong between the stored bytes and the response
        is the entry's fault, whatever it raises: the call goes on, the entry is deleted."""
        response = entry = None
        if error is None and data is not None:
            try:
                entry = decode_entry(data)
                response = self._replay(entry)
            except Exception as exc:
                error = exc if isinstance(exc, CorruptCacheEntryError) else CorruptCacheEntryError(
                    f"not a llmspend cache entry: {type(exc).__name__}: {exc}")
        if error is not None:
            self._fault(request, error)
        context = request.context
        if response is None or entry is None:
            context.set_attributes({HIT: False, STATUS: "miss"})
            return None, isinstance(error, CorruptCacheEntryError), self._counts.add("misses")
        context.set_attributes({HIT: True, STATUS: "hit", AGE: max(0.0, time.time() - entry.created)})
        context.served_from = "cache"
        return response, False, self._counts.add("hits", saved_usd=entry.cost_usd or 0.0)

    @staticmethod
    def _replay(entry: Entry) -> Response:
        age = max(0, int(time.time() - entry.created))
        headers = Headers((*entry.headers, (CONTROL_HEADER, "hit"), ("age", str(age))))
        if entry.chunks is not None:
            return Response(entry.status, headers, stream=ReplayStream(entry.chunks))
        return Response(entry.status, headers, content=entry.body)

    def _encode(self, request: Request, response: Response, body: bytes | None, chunks: list[bytes] | None) -> bytes | None:
        """The entry to store for an answer, or None when it should not be stored: too large,
        a stream that did not end with the provider's end event, a body we cannot read, an
        answer that reports an error of the provider's."""
        call, adapter = request.call, request.adapter
        if call is None or adapter is None or (body is None and chunks is None):
            return None
        if chunks is not None:
            outcome = stream_outcome(adapter, call, request, chunks)
            if not outcome.complete:
                return None
        else:
            if body is None or len(body) > self.config.max_entry_bytes:
                return None
            try:
                outcome = adapter.parse_response(call, body)
            except ResponseParseError:
                return None  # not what the provider normally says: do not keep it
        if outcome.error_type is not None:
            return None  # an error inside a 2xx answer (a failed response): not an answer to keep
        cost = None
        if outcome.usage is not None:
            cost = price_call(self.prices, call, outcome, outcome.usage).total_usd
        return encode_entry(Entry(
            response.status_code,
            stored_headers(response.headers),
            body=body,
            chunks=tuple(chunks) if chunks is not None else None,
            created=time.time(),
            cost_usd=cost,
        ))

    def _stored(self, request: Request, stored: bool) -> dict[str, float] | None:
        request.context.set_attribute(STORED, stored)
        return self._counts.add("stores") if stored else None

    # -- sync ----------------------------------------------------------------------------
    def handle(self, request: Request, call_next: CallNext) -> Response:
        plan = self._plan(request)
        if plan is None:
            return call_next(request)
        store = plan.store
        if plan.lookup:
            hit, store = self._lookup(request, plan)
            if hit is not None:
                return hit
        response = call_next(plan.outgoing)
        if not store or not response.is_success:
            return response
        if response.is_event_stream:
            return response.with_stream(RecordingStream(
                response, self.config.max_entry_bytes, lambda chunks: self._store(request, plan, response, None, chunks)
            ))
        self._store(request, plan, response, response.read(), None)
        return response

    def _lookup(self, request: Request, plan: _Plan) -> tuple[Response | None, bool]:
        """The stored answer (None: go to the provider), and whether to store the answer: not when the
        backend itself failed (it would fail again, and the first error is the one to show)."""
        try:
            data, error = self.backend.get(plan.key), None
        except Exception as exc:
            data, error = None, exc
        hit, corrupt, due = self._read(request, data, error)
        if corrupt:
            self._call_quietly(self.backend.delete, plan.key)
        self._flush(due)
        return hit, error is None or corrupt

    def _store(self, request: Request, plan: _Plan, response: Response, body: bytes | None, chunks: list[bytes] | None) -> None:
        try:
            data = self._encode(request, response, body, chunks)
            if data is not None:
                self.backend.set(plan.key, data, plan.ttl_s)
        except Exception as exc:
            self._fault(request, exc)
            data = None
        self._flush(self._stored(request, data is not None))

    def _flush(self, due: dict[str, float] | None) -> None:
        if due:
            self._call_quietly(self.backend.add_counts, due)

    @staticmethod
    def _call_quietly(fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # already reported, or only bookkeeping
            pass

    # -- async ---------------------------------------------------------------------------
    async def ahandle(self, request: Request, call_next: AsyncCallNext) -> Response:
        plan = self._plan(request)
        if plan is None:
            return await call_next(request)
        store = plan.store
        if plan.lookup:
            hit, store = await self._alookup(request, plan)
            if hit is not None:
                return hit
        response = await call_next(plan.outgoing)
        if not store or not response.is_success:
            return response
        if response.is_event_stream:

            async def on_end(chunks: list[bytes] | None) -> None:
                await self._astore(request, plan, response, None, chunks)

            return response.with_stream(AsyncRecordingStream(response, self.config.max_entry_bytes, on_end))
        await self._astore(request, plan, response, await response.aread(), None)
        return response

    async def _alookup(self, request: Request, plan: _Plan) -> tuple[Response | None, bool]:
        try:
            data, error = await self.backend.aget(plan.key), None
        except Exception as exc:
            data, error = None, exc
        hit, corrupt, due = self._read(request, data, error)
        if corrupt:
            try:
                await self.backend.adelete(plan.key)
            except Exception:
                pass
        await self._aflush(due)
        return hit, error is None or corrupt

    async def _astore(self, request: Request, plan: _Plan, response: Response, body: bytes | None, chunks: list[bytes] | None) -> None:
        try:
            data = self._encode(request, response, body, chunks)
            if data is not None:
                await self.backend.aset(plan.key, data, plan.ttl_s)
        except Exception as exc:
            self._fault(request, exc)
            data = None
        await self._aflush(self._stored(request, data is not None))

    async def _aflush(self, due: dict[str, float] | None) -> None:
        if due:
            try:
                await self.backend.aadd_counts(due)
            except Exception:
                pass

    def close(self) -> None:
        self._at_exit.detach()
        self._flush(self._counts.take())
        if self._owns_backend:
            self.backend.close()

    async def aclose(self) -> None:
        self._at_exit.detach()
        await self._aflush(self._counts.take())
        if self._owns_backend:
            await self.backend.aclose()


_CONFIG_FIELDS = tuple(f.name for f in fields(CacheConfig))


def _build(value: Any, context: BuildContext) -> Stage:
    if isinstance(value, CacheStage):
        return value
    if value is True:
        config = CacheConfig()
    elif isinstance(value, CacheConfig):
        config = value
    elif isinstance(value, str | os.PathLike | CacheBackend):
        config = CacheConfig(value)
    elif isinstance(value, Mapping):
        try:
            config = CacheConfig(**value)
        except TypeError as exc:
            raise ConfigError(f"cache= options: {exc}; known: {', '.join(_CONFIG_FIELDS)}") from exc
    else:
        raise ConfigError(
            "cache= takes True (the default directory), a directory, a URL (redis://...), a CacheBackend, "
            f"a CacheConfig or a dict of its fields; got {value!r}"
        )
    owns = not isinstance(config.location, CacheBackend)
    backend = open_backend(config.location, **config.options)
    return CacheStage(backend, config, prices=context.prices, owns_backend=owns)


SPEC = StageSpec(
    option="cache",
    order=400,
    build=_build,
    doc="answer repeated calls from a cache: True, a directory, a redis:// URL, a CacheBackend or a CacheConfig",
)
