"""``python -m llmspend.testing [--port N]``: run the fake OpenAI-compatible server on its own
(for benchmarks, where the server must not share the client's process)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .server import FakeLLMServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    args = parser.parse_args()
    server = FakeLLMServer(args.host, args.port).start()
    print(server.port, flush=True)  # stdout holds the port alone, for scripts that start it
    print(f"fake OpenAI-compatible server at {server.base_url} (Ctrl-C stops it)", file=sys.stderr, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.stop()


if __name__ == "__main__":
    main()
