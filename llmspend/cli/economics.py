"""``llmspend economics encs|breakeven|sizing``: is the feature worth it, would self-hosting
be cheaper, how much memory a self-hosted model needs (docs/economics.md)."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..economics import (
    ACTIONS,
    MODEL_SHAPES,
    BreakevenResult,
    EncsResult,
    breakeven,
    encs,
    read_action_log,
    serverless_usd_per_request,
    sizing,
)
from ..exceptions import ConfigError
from ._table import format_table, usd

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9}


def quantity(text: str) -> float:
    """``1.2M``, ``500k``, ``20M``, ``1e6``, ``1,000`` -> a number."""
    match = re.fullmatch(r"\s*(-?[0-9][0-9,_]*\.?[0-9]*(?:e-?[0-9]+)?)\s*([kmb]?)\s*", text.lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a number: {text!r} (write e.g. 1200000, 1.2M or 500k)")
    return float(match.group(1).replace(",", "").replace("_", "")) * _SUFFIX[match.group(2)]


def _split(text: str, shape: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected {shape} pairs separated by commas, got {text!r}")
        out[key.strip()] = value.strip()
    return out


def pairs(text: str) -> dict[str, float]:
    """``use=0.6,edit=0.25`` -> {"use": 0.6, "edit": 0.25}."""
    return {key: quantity(value) for key, value in _split(text, "NAME=NUMBER").items()}


def _where(text: str) -> dict[str, str]:
    """``model=gpt2,team=a`` -> {"model": "gpt2", "team": "a"}."""
    return _split(text, "COLUMN=VALUE")


def _emit(args: argparse.Namespace, data: Any, text: Callable[[], str], plot: Callable[[str], object]) -> int:
    """Draw the chart if asked, then print JSON or the text tables."""
    if args.plot:
        plot(args.plot)
    print(json.dumps(data, indent=2) if args.json else text())
    if args.plot and not args.json:
        print(f"\nChart written to {args.plot}")
    return 0


def _volumes(text: str) -> list[float]:
    return [quantity(v) for v in text.split(",") if v.strip()]


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "economics",
        help="is the feature saving money; API or self-hosting; model memory",
        description="Economics of an LLM feature: expected net cost savings per response (encs), API against "
        "self-hosting across volumes (breakeven), memory for a self-hosted model (sizing). See docs/economics.md.",
    )
    parser.set_defaults(parser=parser)
    group = parser.add_subparsers(dest="economics_command", metavar="COMMAND")
    _register_encs(group)
    _register_breakeven(group)
    _register_sizing(group)


# -- encs ---------------------------------------------------------------------------------
def _register_encs(group: Any) -> None:
    p = group.add_parser(
        "encs",
        help="expected net cost savings per response, per year, and the break-even volume",
        description="ENCS = sum over use/edit/ignore of P(action) x saving(action) - cost per response, where "
        "saving(action) = hourly rate / 3600 x seconds the action saves. Rates from --rates or a CSV of agent "
        "decisions (--actions); cost from --cost-usd/--cost-cents or measured from spans (--spans).",
    )
    p.add_argument("--hourly-rate", type=quantity, required=True, metavar="USD", help="what an hour of agent time costs")
    p.add_argument("--rates", type=pairs, metavar="use=P,edit=P,ignore=P",
                   help="share of responses used as is, edited, ignored (they add up to 1)")
    p.add_argument("--actions", metavar="CSV", help="a log of agent decisions: column 'action' (use/edit/ignore), "
                   "optional 'seconds' (time spent on that message); see docs/economics.md")
    p.add_argument("--where", type=_where, metavar="COL=VALUE",
                   help="with --actions: count only rows whose column COL is VALUE (e.g. model=gpt2)")
    p.add_argument("--saved", type=pairs, metavar="use=S,edit=S,ignore=S",
                   help="seconds each action saves (negative: costs); e.g. use=25,ignore=0")
    p.add_argument("--baseline-seconds", type=quantity, metavar="S",
                   help="with --actions and a seconds column: seconds to write a message unaided; "
                   "seconds saved = baseline - mean seconds spent")
    cost = p.add_mutually_exclusive_group(required=True)
    cost.add_argument("--cost-usd", action="append", metavar="[NAME=]USD",
                      help="the model's cost per response in USD; repeat NAME=USD to compare options")
    cost.add_argument("--cost-cents", action="append", metavar="[NAME=]CENTS", help="the same in cents")
    cost.add_argument("--spans", metavar="FILE", help="measure the cost per response: mean llmspend.cost.usd of "
                      "the LLM call spans in FILE")
    p.add_argument("--feature", help="with --spans: only calls of this feature (llmspend.feature)")
    p.add_argument("--volume", type=quantity, metavar="N", help="responses a year (e.g. 1.2M)")
    p.add_argument("--setup-usd", type=quantity, default=0.0, metavar="USD",
                   help="one-off set-up cost (training, distillation, integration)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--plot", metavar="FILE.png", help="also draw net savings against volume")
    p.set_defaults(func=_run_encs, parser=p)


def _costs(args: argparse.Namespace) -> dict[str, float]:
    if args.spans:
        from ..report import build_report

        report = build_report(args.spans)
        mean = report.mean_cost_usd(args.feature)
        if mean is None:
            scope = f" of feature {args.feature!r}" if args.feature else ""
            raise ConfigError(f"no priced LLM calls{scope} in {args.spans}: cannot measure a cost per response")
        return {args.feature or "measured": mean}
    scale, given = (1.0, args.cost_usd) if args.cost_usd else (0.01, args.cost_cents)
    costs: dict[str, float] = {}
    for item in given:
        name, sep, value = item.rpartition("=")
        try:
            costs[name.strip() if sep else "model"] = quantity(value) * scale
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(str(exc)) from None
    return costs


def _run_encs(args: argparse.Namespace) -> int:
    from ..economics.plot import plot_encs

    if (args.rates is None) == (args.actions is None):
        raise ConfigError("give the action rates: --rates use=P,edit=P,ignore=P or --actions FILE.csv (one of them)")
    seconds = args.saved
    if args.actions:
        log = read_action_log(args.actions, where=args.where)
        rates = log.rates
        if seconds is None:
            if args.baseline_seconds is None:
                raise ConfigError("say what each action saves: --saved use=S,edit=S,ignore=S, or --baseline-seconds "
                                  "with a 'seconds' column in the log")
            seconds = log.seconds_saved(args.baseline_seconds)
    else:
        rates = args.rates
        if seconds is None:
            raise ConfigError("say how many seconds each action saves: --saved use=S,edit=S,ignore=S")
    results = {
        name: encs(action_rates=rates, seconds_saved=seconds, hourly_rate_usd=args.hourly_rate,
                   cost_per_response_usd=cost, annual_volume=args.volume, setup_cost_usd=args.setup_usd)
        for name, cost in _costs(args).items()
    }
    return _emit(args, {name: r.as_dict() for name, r in results.items()},
                 lambda: _encs_text(results, source=args.actions), lambda path: plot_encs(results, path))


def _cents(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:,.4f}¢"


def _money(value: float | None) -> str:
    return "-" if value is None else f"-${-value:,.0f}" if value < 0 else f"${value:,.0f}"


def _breakeven_volume(r: EncsResult) -> str:
    if r.breakeven_volume is None:
        return "never"
    return "no set-up" if r.setup_cost_usd == 0 else f"{r.breakeven_volume:,.0f}"


def _encs_text(results: Mapping[str, EncsResult], *, source: str | None) -> str:
    first = next(iter(results.values()))
    lines = [f"Agent time: ${first.hourly_rate_usd:,.2f} an hour" + (f"; action rates from {source}" if source else "")]
    lines.append(format_table(
        ["action", "share", "seconds saved", "saving each"],
        [(a, f"{first.action_rates[a]:.1%}", f"{first.seconds_saved[a]:g}" if a in first.seconds_saved else "-",
          _cents(first.saving_per_action_usd.get(a))) for a in ACTIONS],
        right=(1, 2, 3),
    ))
    volume = first.annual_volume
    lines.append("")
    lines.append(format_table(
        ["option", "cost/response", "gross saving", "ENCS", f"a year at {volume:,.0f}" if volume else "a year",
         "set-up", "first-year net", "break-even volume"],
        [(name, _cents(r.cost_per_response_usd), _cents(r.gross_saving_usd), _cents(r.encs_usd),
          _money(r.annual_savings_usd), _money(r.setup_cost_usd), _money(r.first_year_net_usd),
          _breakeven_volume(r))
         for name, r in results.items()],
        right=(1, 2, 3, 4, 5, 6, 7),
    ))
    lines.append("\nENCS = sum P(action) x saving(action) - cost per response; gross saving is the most a "
                 "response may cost before the feature loses money.")
    return "\n".join(lines)


# -- breakeven ----------------------------------------------------------------------------
def _register_breakeven(group: Any) -> None:
    p = group.add_parser(
        "breakeven",
        help="API against self-hosting: cost a day and a year across volumes, and where they cross",
        description="Daily and yearly cost of an API (tokens x price, or a measured cost per request) against "
        "self-hosting (instances a day + serverless and gateway fees a request) across request volumes.",
    )
    api = p.add_argument_group("the API")
    api.add_argument("--tokens", type=quantity, metavar="N", help="tokens a request")
    api.add_argument("--usd-per-1k", type=quantity, metavar="USD", help="price per 1K tokens")
    api.add_argument("--api-usd-per-request", type=quantity, metavar="USD", help="price a request, instead of the two above")
    api.add_argument("--spans", metavar="FILE", help="measure the API's price a request from spans (mean llmspend.cost.usd)")
    api.add_argument("--feature", help="with --spans: only calls of this feature")
    host = p.add_argument_group("self-hosting")
    host.add_argument("--instance-usd-per-hour", type=quantity, metavar="USD")
    host.add_argument("--instance-usd-per-day", type=quantity, metavar="USD")
    host.add_argument("--instances", type=int, default=1, help="instances paid for at any volume (default 1)")
    host.add_argument("--capacity", type=quantity, metavar="N",
                      help="requests a day one instance serves; more instances are added as volume needs them")
    host.add_argument("--serverless-usd-per-million", type=quantity, default=0.0, metavar="USD",
                      help="a function in front of the model, per million requests")
    host.add_argument("--lambda", dest="lambda_", metavar="SECONDS,MB,USD_PER_GB_S",
                      help="or price that function from its duration, memory and GB-second price, e.g. 5,128,0.0000166667")
    host.add_argument("--gateway-usd-per-million", type=quantity, default=0.0, metavar="USD",
                      help="an API gateway, per million requests")
    p.add_argument("--volumes", type=_volumes, metavar="N,N,...", help="requests a day to tabulate (default 100 to 10M)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--plot", metavar="FILE.png", help="also draw cost against volume with the crossing marked")
    p.set_defaults(func=_run_breakeven, parser=p)


def _run_breakeven(args: argparse.Namespace) -> int:
    from ..economics.plot import plot_breakeven

    api_price = args.api_usd_per_request
    if args.spans:
        if api_price is not None or args.tokens is not None:
            raise ConfigError("give the API's price one way: --spans, --api-usd-per-request, or --tokens with --usd-per-1k")
        from ..report import build_report

        api_price = build_report(args.spans).mean_cost_usd(args.feature)
        if api_price is None:
            raise ConfigError(f"no priced LLM calls in {args.spans} to measure a price a request from")
    serverless = args.serverless_usd_per_million / 1e6
    if args.lambda_:
        if args.serverless_usd_per_million:
            raise ConfigError("give --lambda or --serverless-usd-per-million, not both")
        try:
            seconds, memory, price = (quantity(v) for v in args.lambda_.split(","))
        except (ValueError, argparse.ArgumentTypeError):
            raise ConfigError(f"--lambda takes SECONDS,MB,USD_PER_GB_SECOND, e.g. 5,128,0.0000166667; got {args.lambda_!r}") from None
        serverless = serverless_usd_per_request(seconds, memory, price)
    result = breakeven(
        api_usd_per_request=api_price, tokens_per_request=args.tokens, usd_per_1k_tokens=args.usd_per_1k,
        instance_usd_per_hour=args.instance_usd_per_hour, instance_usd_per_day=args.instance_usd_per_day,
        instances=args.instances, requests_per_instance_per_day=args.capacity,
        serverless_usd_per_request=serverless, gateway_usd_per_request=args.gateway_usd_per_million / 1e6,
        volumes=args.volumes,
    )
    return _emit(args, result.as_dict(), lambda: _breakeven_text(result), lambda path: plot_breakeven(result, path))


def _daily(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 else f"${value:,.4f}"


def _breakeven_text(r: BreakevenResult) -> str:
    capacity = f", {r.requests_per_instance_per_day:,.0f} requests a day each" if r.requests_per_instance_per_day else ""
    lines = [
        f"API: {usd(r.api_usd_per_request, 7)} a request",
        f"Self-hosting: {r.instances} instance{'s' if r.instances > 1 else ''} at {_daily(r.instance_usd_per_day)} a day"
        f"{capacity}, plus {usd(r.self_host_usd_per_request, 7)} a request "
        f"(${r.self_host_usd_per_request * 1e6:,.2f} per million)",
        "",
        format_table(
            ["requests/day", "API/day", "self-host/day", "API/year", "self-host/year", "instances", "cheaper"],
            [(f"{p.requests_per_day:,.0f}", _daily(p.api_usd_per_day), _daily(p.self_host_usd_per_day),
              _money(p.api_usd_per_year), _money(p.self_host_usd_per_year), p.instances, p.cheaper) for p in r.points],
            right=(0, 1, 2, 3, 4, 5),
        ),
        "",
    ]
    v = r.crossover_requests_per_day
    if v is None:
        lines.append("Self-hosting never costs less at these prices: its per-request fees, or an instance's cost over "
                     "what it can serve, exceed the API's price.")
    else:
        lines.append(f"Self-hosting costs less from {v:,.0f} requests a day ({v * 365:,.0f} a year); the API below that.")
        if r.requests_per_instance_per_day:
            lines.append("With a capacity per instance, each added instance raises the self-hosting line by a step: "
                         "see the table for volumes just past a step.")
    return "\n".join(lines)


# -- sizing -------------------------------------------------------------------------------
def _register_sizing(group: Any) -> None:
    p = group.add_parser(
        "sizing",
        help="memory a self-hosted model needs: weights and KV cache",
        description="Weights = parameters x bytes per parameter; KV cache = 2 x layers x kv_heads x head_dim x bytes "
        "x context x batch. GB are 10^9 bytes.",
    )
    p.add_argument("model", nargs="?", help=f"a known model ({', '.join(MODEL_SHAPES)})")
    p.add_argument("--params", help="parameter count, e.g. 13B (overrides the model's)")
    p.add_argument("--layers", type=int)
    p.add_argument("--kv-heads", type=int, help="key/value heads (num_key_value_heads in config.json)")
    p.add_argument("--head-dim", type=int, help="hidden_size / num_attention_heads unless config.json says head_dim")
    p.add_argument("--precision", action="append", metavar="P",
                   help="weights precision: fp32, fp16, bf16, fp8, int8, int4 (repeat to compare; default fp32, fp16, int8, int4)")
    p.add_argument("--kv-precision", help="KV cache precision (default: fp16)")
    p.add_argument("--context", type=int, default=4096, help="tokens a sequence (default 4096)")
    p.add_argument("--batch", type=int, default=1, help="sequences served at once (default 1)")
    p.add_argument("--gpu-gb", type=quantity, metavar="GB", help="memory of one accelerator, to count how many are needed")
    p.add_argument("--list", action="store_true", help="list the known model shapes")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run_sizing, parser=p)


def _run_sizing(args: argparse.Namespace) -> int:
    if args.list:
        shapes = [(s.name, f"{s.params / 1e9:,.2f}B", s.layers, s.kv_heads, s.head_dim,
                 f"{s.kv_bytes_per_token() / 1024:,.0f} KiB") for s in MODEL_SHAPES.values()]
        print(format_table(["model", "params", "layers", "kv heads", "head dim", "KV fp16/token"], shapes,
                           right=(1, 2, 3, 4, 5)))
        return 0
    if not args.model and not args.params:
        raise ConfigError("name a model (llmspend economics sizing --list) or give --params, e.g. --params 13B")
    precisions = args.precision or ["fp32", "fp16", "int8", "int4"]
    results = [
        sizing(args.model, params=args.params, layers=args.layers, kv_heads=args.kv_heads, head_dim=args.head_dim,
               precision=p, kv_precision=args.kv_precision or "fp16", context_tokens=args.context,
               batch=args.batch, gpu_memory_gb=args.gpu_gb)
        for p in precisions
    ]
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
        return 0
    first = results[0]
    head = f"{first.model or 'model'}: {first.params / 1e9:,.2f}B parameters"
    if first.kv_cache_gb is not None and first.kv_bytes_per_token is not None:
        head += (f"; KV cache ({first.kv_precision}) {first.kv_bytes_per_token / 1024:,.0f} KiB a token x "
                 f"{first.context_tokens:,} tokens x batch {first.batch} = {first.kv_cache_gb:,.2f} GB")
    else:
        head += "; KV cache not sized (give --layers, --kv-heads and --head-dim, or a known model)"
    print(head + "\n")
    gpu_header = f"x {args.gpu_gb:g} GB" if args.gpu_gb else None
    headers = ["weights", "weights GB", "KV cache GB", "total GB"] + ([gpu_header] if gpu_header else [])
    rows = [[r.precision, f"{r.weights_gb:,.2f}", "-" if r.kv_cache_gb is None else f"{r.kv_cache_gb:,.2f}",
             f"{r.total_gb:,.2f}"] + ([str(r.gpus)] if gpu_header else []) for r in results]
    print(format_table(headers, rows, right=(1, 2, 3, 4)))
    if gpu_header:
        print(f"\nAccelerators needed keep {first.headroom:.0%} of each free for activations and the server's buffers.")
    return 0
