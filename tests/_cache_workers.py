"""Worker for the multi-process cache test (spawned processes import this small module)."""

from __future__ import annotations

import hashlib
import json
import random
import threading
from typing import Any

SHARED_KEYS = 24  # keys every writer writes: contention on purpose


def value_for(key: str, writer: str, size: int) -> bytes:
    """A value that carries its own checksum, so a torn or mixed-up read is detectable."""
    payload = hashlib.sha256(f"{key}/{writer}".encode()).hexdigest() * (size // 64 + 1)
    record = {"key": key, "writer": writer, "payload": payload[:size],
              "sha": hashlib.sha256(payload[:size].encode()).hexdigest()}
    return json.dumps(record).encode()


def check(key: str, data: bytes) -> str | None:
    """Why ``data`` is not a whole value written for ``key``, or None."""
    try:
        record = json.loads(data)
    except ValueError as exc:
        return f"{key}: not JSON ({exc})"
    if record.get("key") != key:
        return f"{key}: holds the value of {record.get('key')}"
    if hashlib.sha256(record["payload"].encode()).hexdigest() != record["sha"]:
        return f"{key}: torn value"
    return None


def work(directory: str, process: int, threads: int, operations: int) -> dict[str, Any]:
    """Write and read through one DiskCache from several threads; report what went wrong and
    every (key, writer) this process wrote."""
    from llmspend.cache import DiskCache

    cache = DiskCache(directory)
    errors: list[str] = []
    written: list[tuple[str, str]] = []
    lock = threading.Lock()

    def thread(index: int) -> None:
        rng = random.Random(process * 1000 + index)
        writer = f"p{process}t{index}"
        for op in range(operations):
            shared = rng.random() < 0.5
            key = f"{'shared' if shared else writer}-{rng.randrange(SHARED_KEYS) if shared else op}".ljust(64, "x")
            try:
                if rng.random() < 0.6:
                    # small values live in SQLite, large ones (> 32 KB) in files of their own
                    cache.set(key, value_for(key, writer, rng.choice((200, 2_000, 40_000))), ttl_s=600)
                    with lock:
                        written.append((key, writer))
                else:
                    data = cache.get(key)
                    if data is not None and (why := check(key, data)):
                        with lock:
                            errors.append(why)
            except Exception as exc:  # any fault is a failure of the test
                with lock:
                    errors.append(f"{writer} {key[:20]}: {type(exc).__name__}: {exc}")

    pool = [threading.Thread(target=thread, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    cache.close()
    return {"errors": errors, "written": written}
