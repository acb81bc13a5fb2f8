"""``llmspend.wrap``: the pipeline installed in an existing client, in one line.

    client = llmspend.wrap(openai.OpenAI())            # same type, same settings
    client = llmspend.wrap(httpx2.Client(base_url=...), provider="openai")

Options are validated here, before anything is sent: an unknown option or a wrong value
raises :class:`~llmspend.exceptions.ConfigError` saying what to change.
"""

from __future__ import annotations

import copy
import difflib
from typing import TYPE_CHECKING, Any, TypeVar

from .exceptions import ConfigError
from .pipeline import CORE_OPTIONS, BuildContext, Pipeline, Stage
from .plugins import provider_adapters, stage_specs
from .pricing.table import coerce_prices
from .providers.base import ProviderAdapter
from .transports import install, library_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from .stages.retry import RetryStage

__all__ = ["wrap", "build_pipeline", "known_options"]

T = TypeVar("T")



def known_options() -> dict[str, str]:
    """Every option ``wrap()`` accepts, with what it takes."""
    options = dict(CORE_OPTIONS)
    for spec in stage_specs():
        options[spec.option] = spec.doc or f"the {spec.option} stage"
    return options


def _check_options(options: dict[str, Any]) -> None:
    known = known_options()
    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"wrap() got an unknown option {name!r}.{hint} Known options: {', '.join(sorted(known))}"
            )


def _adapters_for(client: object | None, provider: object) -> tuple[ProviderAdapter, ...]:
    if client is not None:
        for adapter in (provider,) if isinstance(provider, ProviderAdapter) else provider_adapters():
            reason = adapter.unsupported_client(client)  # type: ignore[union-attr]
            if reason is not None:
                raise ConfigError(reason)
    if isinstance(provider, ProviderAdapter):
        return (provider,)
    if provider is not None and not isinstance(provider, str):
        raise ConfigError(f"provider= takes a provider name or a ProviderAdapter, got {type(provider).__name__}")
    adapters = provider_adapters()
    chosen: tuple[ProviderAdapter, ...]
    if client is not None:
        chosen = tuple(a for a in adapters if a.supports_client(client))[:1]
        if not chosen:
            raise ConfigError(
                f"no llmspend provider adapter handles {type(client).__module__}.{type(client).__name__}; "
                "install its plugin (e.g. pip install llmspend-anthropic) or pass provider="
            )
    elif isinstance(provider, str):
        named = tuple(a for a in adapters if a.name == provider)
        chosen = named or tuple(a for a in adapters if a.name == "openai")
    else:
        chosen = adapters
    if isinstance(provider, str):
        renamed = []
        for adapter in chosen:
            adapter = copy.copy(adapter)
            adapter.provider = provider
            renamed.append(adapter)
        chosen = tuple(renamed)
    return chosen


def build_pipeline(
    *,
    is_async: bool | None = None,
    adapters: tuple[ProviderAdapter, ...] | None = None,
    **options: Any,
) -> Pipeline:
    """Build the pipeline ``wrap()`` would install, for use with a transport directly.

    ``is_async`` says whether it will serve an async client (stages that only work async then
    fail here, at construction, if it is False). ``adapters`` defaults to every installed
    provider adapter, each request read by the first that recognises it.
    """
    _check_options(options)
    provider = options.get("provider")
    if adapters is None:
        adapters = _adapters_for(None, provider)
    context = BuildContext(
        prices=coerce_prices(options.get("prices")),
        is_async=bool(is_async),
        tracer_provider=options.get("tracer_provider"),
        meter_provider=options.get("meter_provider"),
        adapters=adapters,
        options=options,
    )
    stages: list[tuple[int, Stage]] = []
    for spec in stage_specs():
        value = options.get(spec.option, spec.default)
        if value is None or value is False:
            continue
        stage = spec.build(value, context)
        if not isinstance(stage, Stage):
            raise ConfigError(f"the {spec.option!r} stage factory returned {type(stage).__name__}, not a Stage")
        stages.append((spec.order, stage))
    stages.sort(key=lambda pair: pair[0])
    return Pipeline([stage for _, stage in stages], adapters, is_async=is_async)


def _sdk_http_client(client: object) -> Any:
    """The httpx2/httpx client inside an official (Stainless-generated) SDK client."""
    http = getattr(client, "_client", None)
    if http is not None and library_of(http) is not None and callable(getattr(client, "copy", None)):
        return http
    return None


def wrap(client: T, **options: Any) -> T:
    """Return ``client`` with the llmspend pipeline in its HTTP transport.

    ``client`` is an official SDK client (``openai.OpenAI``/``AsyncOpenAI``; others through
    provider plugins) or a plain ``httpx2``/``httpx`` client, sync or async. The result is a
    client of the same type and settings (timeouts, proxies, limits, default headers); the
    client passed in is left unchanged. See :func:`known_options` for the options.

    With retries on (the default) the returned SDK client has the SDK's own retries turned off,
    so attempts do not multiply (the ``max_retries`` it was made with caps llmspend's unless a
    retry policy is given); ``retry=False`` keeps the SDK's.
    """
    _check_options(options)
    sdk_http = _sdk_http_client(client)
    http = sdk_http if sdk_http is not None else client
    found = library_of(http)
    if found is None:
        raise ConfigError(
            f"llmspend.wrap() takes an official SDK client (openai.OpenAI, openai.AsyncOpenAI, ...) or an "
            f"httpx2/httpx client; got {type(client).__module__}.{type(client).__name__}"
        )
    _, is_async = found
    adapters = _adapters_for(client if sdk_http is not None else None, options.get("provider"))
    pipeline = build_pipeline(is_async=is_async, adapters=adapters, **options)
    if sdk_http is not None and getattr(client, "_use_sigv4", False) is True:
        _check_signed_requests(client, pipeline)
    wrapped_http = install(http, pipeline)
    if sdk_http is None:
        return wrapped_http  # type: ignore[no-any-return]
    return _sdk_client(client, wrapped_http, pipeline, options.get("retry", True) is True)


#: stages that change a request after the SDK built it (its body, its headers) or key on its
#: credential header: trimming, batching and cascades rewrite the body, the cache strips its
#: control headers and scopes entries by the Authorization header
_CHANGES_SIGNED_REQUESTS = ("trim", "batch", "cascade", "cache")


def _check_signed_requests(client: Any, pipeline: Pipeline) -> None:
    """An SDK client that signs each request with AWS SigV4 (``AnthropicAWS``,
    ``AnthropicBedrockMantle`` with AWS credentials) signs its body and headers before the
    transport sees them: a stage that changes them would have AWS reject the call, and the
    signature in the Authorization header changes on every request, so a cache scoped by it
    would store every answer and never hit. Such stages are a configuration error."""
    found = [name for name in _CHANGES_SIGNED_REQUESTS if pipeline.stage(name) is not None]
    if found:
        raise ConfigError(
            f"{type(client).__name__} signs every request with AWS SigV4, so llmspend cannot use "
            f"{', '.join(f'{name}=' for name in found)} with it (a changed request fails AWS's signature check, "
            "and the cache would be keyed by a signature that changes on every call). Remove those options, "
            "or create the client with an API key (api_key=...) instead of AWS credentials"
        )


def _sdk_client(client: T, http_client: Any, pipeline: Pipeline, default_retry: bool) -> T:
    """A copy of the SDK ``client`` sending through ``http_client``, its own retries off when
    llmspend's ``retry`` stage runs and as they were otherwise. With ``default_retry`` (no
    retry policy given), the ``max_retries`` the client was made with caps llmspend's."""
    from .stages.retry import MAX_RETRIES_HEADER, RetryStage

    retry = pipeline.stage("retry")
    options: dict[str, Any] = {}
    taken_over = getattr(client, "__dict__", {}).get("copy")
    if isinstance(taken_over, _PipelineCopy) and taken_over.retry is not None:
        # Wrapped before: copied as the SDK copies it (the copy() set on it would turn a
        # max_retries into a cap header), with the SDK retries it had before, or the cap a copy
        # of it asked for; the cap stays a header only where a retry stage will read it.
        sdk_copy, sdk_retries = taken_over.sdk_copy, taken_over.sdk_max_retries
        headers = dict(getattr(client, "_custom_headers", None) or {})
        cap = headers.pop(MAX_RETRIES_HEADER, None)
        if cap is not None and isinstance(retry, RetryStage):
            headers[MAX_RETRIES_HEADER] = cap
            retry.reads_max_retries = True
        elif cap is not None and cap.isdigit():
            sdk_retries = int(cap)
        options["set_default_headers"] = headers
    else:
        sdk_copy = taken_over.sdk_copy if isinstance(taken_over, _PipelineCopy) else client.copy  # type: ignore[attr-defined]
        sdk_retries = client.max_retries  # type: ignore[attr-defined]
        if (default_retry and isinstance(retry, RetryStage) and isinstance(sdk_retries, int)
                and 0 <= sdk_retries != retry.policy.max_attempts - 1):
            # OpenAI(max_retries=0) means "no retries" (an app retrying or failing over by
            # itself): honoured as with_options(max_retries=...) on the wrapped client is.
            options["default_headers"] = {MAX_RETRIES_HEADER: str(sdk_retries)}
            retry.reads_max_retries = True
    taking_over = retry if isinstance(retry, RetryStage) else None
    copied: T = sdk_copy(http_client=http_client, max_retries=0 if taking_over is not None else sdk_retries, **options)
    return _PipelineCopy.install(copied, pipeline, taking_over, sdk_retries)


class _PipelineCopy:
    """``copy``/``with_options`` of a wrapped SDK client (the SDKs' per-use idiom). An
    ``http_client=`` given to it gets the pipeline too, or the copy's calls would go unmeasured
    and unbudgeted. Where llmspend took over the retries (``retry``), the copy keeps the SDK's
    off, as ``wrap()`` set them, and a ``max_retries=N`` asked of it becomes llmspend's cap
    for that copy's requests (a header the retry stage reads and removes), so attempts still
    never multiply."""

    def __init__(self, client: Any, pipeline: Pipeline, retry: RetryStage | None, sdk_max_retries: int) -> None:
        self.client = client
        #: the SDK's own copy of ``client``
        self.sdk_copy: Callable[..., Any] = client.copy
        self.pipeline = pipeline
        self.retry = retry
        #: the SDK's max_retries before wrap() turned them off (restored by a wrap(retry=False))
        self.sdk_max_retries = sdk_max_retries

    @classmethod
    def install(cls, client: T, pipeline: Pipeline, retry: RetryStage | None, sdk_max_retries: int) -> T:
        # Instance attributes: the SDK's class keeps its methods, and `with_options` is an alias
        # of `copy` at class level, so both are set.
        client.copy = client.with_options = cls(client, pipeline, retry, sdk_max_retries)  # type: ignore[attr-defined]
        return client

    def __call__(self, **options: Any) -> Any:
        from .stages.retry import MAX_RETRIES_HEADER

        if options.get("http_client") is not None:
            options["http_client"] = install(options["http_client"], self.pipeline)
        if self.retry is None:
            return self.install(self.sdk_copy(**options), self.pipeline, None, self.sdk_max_retries)
        retries = options.pop("max_retries", None)
        if isinstance(retries, int) and not isinstance(retries, bool):
            if retries < 0:
                raise ConfigError(f"max_retries must be >= 0, got {retries}")
            key = "set_default_headers" if options.get("set_default_headers") is not None else "default_headers"
            options[key] = {**(options.get(key) or {}), MAX_RETRIES_HEADER: str(retries)}
            self.retry.reads_max_retries = True
        elif options.get("set_default_headers") is not None:
            # Replacing the default headers would drop a cap this client got from an earlier
            # copy; the SDK keeps its max_retries through such a copy, so the cap stays too.
            cap = (getattr(self.client, "_custom_headers", None) or {}).get(MAX_RETRIES_HEADER)
            if cap is not None:
                options["set_default_headers"] = {MAX_RETRIES_HEADER: cap, **options["set_default_headers"]}
        return self.install(self.sdk_copy(max_retries=0, **options), self.pipeline, self.retry, self.sdk_max_retries)
