"""Attribute and metric names: OpenTelemetry's GenAI conventions and llmspend's own.

GenAI names follow the semantic conventions (``open-telemetry/semantic-conventions-genai``,
status Development). There is no merged cost convention: ``gen_ai.usage.cost`` (USD) is what
tracing backends already read as a call's total cost, and ``llmspend.cost.*`` carries the parts.
"""

from __future__ import annotations

# -- GenAI conventions -------------------------------------------------------------------
OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_STREAM = "gen_ai.request.stream"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
# The same count under the name the conventions renamed it to (semantic-conventions-genai#440),
# which the anthropic SDK's own spans and OpenTelemetry's instrumentations use: both are set,
# so a backend reading either name finds it.
USAGE_CACHE_WRITE_INPUT_TOKENS = "gen_ai.usage.cache_write.input_tokens"
USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
USAGE_COST = "gen_ai.usage.cost"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
TOKEN_TYPE = "gen_ai.token.type"
OPENAI_SERVICE_TIER = "openai.response.service_tier"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"

# -- llmspend ----------------------------------------------------------------------------
COST_USD = "llmspend.cost.usd"
COST_INPUT_USD = "llmspend.cost.input_usd"
COST_CACHE_READ_USD = "llmspend.cost.cache_read_usd"
COST_CACHE_WRITE_USD = "llmspend.cost.cache_write_usd"
COST_OUTPUT_USD = "llmspend.cost.output_usd"
COST_REQUEST_USD = "llmspend.cost.request_usd"
#: server-side tool calls (web search, file search, ...) at their fees per call
COST_TOOLS_USD = "llmspend.cost.tools_usd"
COST_STATUS = "llmspend.cost.status"
COST_ESTIMATED = "llmspend.cost.estimated"
COST_SAVED_USD = "llmspend.cost.saved_usd"
#: on a call a stage answered: why no saving is claimed (the answer's own cost is unknown)
SAVED_STATUS = "llmspend.cost.saved_status"
COST_SAVED_STAGE_USD = "llmspend.cost.saved.{stage}_usd"  # one per stage that saved something
COST_BATCH = "llmspend.cost.batch"
#: the cost is the one the provider reported in its answer (OpenRouter, Perplexity), not priced
#: from the table: it comes without parts
COST_REPORTED = "llmspend.cost.reported"
USAGE_CACHE_WRITE_1H_TOKENS = "llmspend.usage.cache_write_1h.input_tokens"
#: the calls an answer made to one of the provider's own tools, by llmspend's tool name
USAGE_TOOL_CALLS = "llmspend.usage.tool_calls.{tool}"
STREAM_COMPLETE = "llmspend.stream.complete"
SERVED_FROM = "llmspend.served_from"
ENDPOINT = "llmspend.endpoint"
#: on another instrumentation's GenAI span (the anthropic SDK's) that has llmspend's span as a
#: child: the call's tokens and cost are on that child, so count the call there
PRICED_IN_CHILD = "llmspend.priced_in_child"
SCORER_PROVIDER = "llmspend.scorer.provider"

# -- metrics -----------------------------------------------------------------------------
METRIC_TOKEN_USAGE = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION = "gen_ai.client.operation.duration"
METRIC_TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
METRIC_COST = "llmspend.cost"
METRIC_SAVED = "llmspend.cost.saved"

# The conventions' advisory bucket boundaries.
TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1, 4, 16, ... 67108864
DURATION_BUCKETS = tuple(0.01 * 2**i for i in range(14))  # 0.01, 0.02, ... 81.92
