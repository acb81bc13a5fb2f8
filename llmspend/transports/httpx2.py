"""The llmspend pipeline as an ``httpx2`` transport (the library the current official SDKs use).

    import httpx2, llmspend
    from llmspend.transports.httpx2 import PipelineTransport

    client = httpx2.Client(transport=PipelineTransport(llmspend.build_pipeline()))

``llmspend.wrap(httpx2_client)`` does the same for an existing client and keeps its settings.
"""

from __future__ import annotations

import httpx2

from ._library import make_transports

__all__ = ["PipelineTransport", "AsyncPipelineTransport"]

PipelineTransport, AsyncPipelineTransport = make_transports(httpx2)
