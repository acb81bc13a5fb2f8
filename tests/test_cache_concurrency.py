"""Several processes times several threads on one cache directory: no errors, no torn
values, every write readable afterwards; and one wrapped client used from many threads."""

from __future__ import annotations

import json
import multiprocessing
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import openai

import llmspend
from llmspend.testing import FakeLLMServer

from . import _cache_workers as workers
from .conftest import API_KEY, Spans

PROCESSES, THREADS, OPERATIONS = 3, 4, 40


def test_processes_and_threads_share_one_directory(tmp_path: Path) -> None:
    directory = str(tmp_path / "shared")
    llmspend.DiskCache(directory).close()  # created once, as an app's first process would
    # an executor, not a Pool: a worker that dies raises here instead of hanging the test
    with ProcessPoolExecutor(PROCESSES, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(workers.work, directory, p, THREADS, OPERATIONS) for p in range(PROCESSES)]
        results = [f.result(timeout=300) for f in futures]
    errors = [e for r in results for e in r["errors"]]
    assert errors == []
    writers: dict[str, set[str]] = defaultdict(set)
    for r in results:
        for key, writer in r["written"]:
            writers[key].add(writer)
    assert len(writers) > PROCESSES * THREADS  # enough distinct keys were written
    cache = llmspend.DiskCache(directory)
    for key, who in writers.items():
        data = cache.get(key)
        assert data is not None, f"{key} was written but cannot be read"
        assert workers.check(key, data) is None
        assert json.loads(data)["writer"] in who  # the last write of one of its writers
    cache.close()


def test_one_client_from_many_threads(server: FakeLLMServer, spans: Spans, tmp_path: Path) -> None:
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY),
                           cache=str(tmp_path / "c"), tracer_provider=spans.provider)
    bare = openai.OpenAI(base_url=server.base_url, api_key=API_KEY)
    questions = [f"question {i}" for i in range(6)]

    def ask(question: str, stream: bool = False) -> str:
        messages = [{"role": "user", "content": question}]
        if stream:
            chunks = client.chat.completions.create(model="gpt-4o-mini", temperature=0, messages=messages, stream=True)
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        answer = client.chat.completions.create(model="gpt-4o-mini", temperature=0, messages=messages)
        return str(answer.choices[0].message.content)

    expected = {q: bare.chat.completions.create(model="gpt-4o-mini", temperature=0,
                                                messages=[{"role": "user", "content": q}]).choices[0].message.content
                for q in questions}
    jobs = [(q, i % 2 == 1) for i in range(8) for q in questions]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda job: (job[0], ask(*job)), jobs))
    assert all(answer == expected[q] for q, answer in answers)
    spans.clear()
    with ThreadPoolExecutor(8) as pool:
        assert all(a == expected[q] for q, a in pool.map(lambda job: (job[0], ask(*job)), jobs))
    assert all(s.attributes["llmspend.cache.hit"] is True for s in spans.finished)  # type: ignore[index]
    client.close()
