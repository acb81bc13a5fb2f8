"""The llmspend pipeline as an ``httpx`` transport (older SDK releases and many libraries).

    import httpx, llmspend
    from llmspend.transports.httpx import PipelineTransport

    client = httpx.Client(transport=PipelineTransport(llmspend.build_pipeline()))
"""

from __future__ import annotations

import httpx

from ._library import make_transports

__all__ = ["PipelineTransport", "AsyncPipelineTransport"]

PipelineTransport, AsyncPipelineTransport = make_transports(httpx)
