"""Concurrent turns from the agent loop's threads are answered by batched generate calls."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from deepeyes.chat import Message
from deepeyes.policies.base import Generation, SamplingParams
from deepeyes.policies.batching import BatchingPolicy


class RecordingModel:
    """Answers each conversation with its own last message, recording batch sizes."""

    def __init__(self, delay_s: float = 0.05, fail: bool = False):
        self.batches: list[int] = []
        self.samplings: list[SamplingParams | None] = []
        self.delay_s = delay_s
        self.fail = fail
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def generate_batch(self, conversations: list[list[Message]], sampling: SamplingParams | None = None) -> list[Generation]:
        with self._lock:
            self.samplings.append(sampling)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        time.sleep(self.delay_s)
        with self._lock:
            self.active -= 1
            self.batches.append(len(conversations))
        if self.fail:
            raise RuntimeError("model exploded")
        suffix = f" @{sampling.temperature}" if sampling is not None else ""
        return [Generation(text="echo " + c[-1].content + suffix) for c in conversations]


def _ask(policy: BatchingPolicy, index: int) -> str:
    return policy.generate([Message("user", f"q{index}")]).text


def test_concurrent_calls_share_batches_and_get_their_own_answers():
    model = RecordingModel()
    policy = BatchingPolicy(model, max_batch=4, gather_s=0.5)  # type: ignore[arg-type]  # slack for a loaded CI box
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda i: _ask(policy, i), range(8)))
    assert answers == [f"echo q{i}" for i in range(8)]
    assert sum(model.batches) == 8 and max(model.batches) == 4 and len(model.batches) <= 3
    assert model.max_active == 1  # one generate at a time on the model
    assert policy.busy_s > 0


def test_identical_conversations_are_answered_once_each():
    """The n samples of one prompt start with the same conversation; each call still gets exactly one answer."""
    model = RecordingModel(delay_s=0.02)
    policy = BatchingPolicy(model, max_batch=3, gather_s=0.05)  # type: ignore[arg-type]
    pool = ThreadPoolExecutor(max_workers=8)
    futures = [pool.submit(lambda: policy.generate([Message("user", "same question")]).text) for _ in range(16)]
    answers = [future.result(timeout=20) for future in futures]  # a lost call would hang: fail instead
    pool.shutdown()
    assert answers == ["echo same question"] * 16
    assert sum(model.batches) == 16


def test_a_failed_batch_raises_in_every_waiting_caller():
    policy = BatchingPolicy(RecordingModel(fail=True), max_batch=4, gather_s=0.1)  # type: ignore[arg-type]
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(_ask, policy, i) for i in range(3)]
        for future in futures:
            with pytest.raises(RuntimeError, match="model exploded"):
                future.result(timeout=10)


def test_calls_with_different_sampling_never_share_a_batch():
    """One generate_batch samples with one setting: each call gets a batch with its own."""
    model = RecordingModel(delay_s=0.02)
    policy = BatchingPolicy(model, max_batch=8, gather_s=0.3)  # type: ignore[arg-type]
    settings = [SamplingParams(temperature=0.5), SamplingParams(temperature=1.0), None]

    def ask(index: int) -> str:
        return policy.generate([Message("user", f"q{index}")], settings[index % 3]).text

    with ThreadPoolExecutor(max_workers=9) as pool:
        answers = list(pool.map(ask, range(9)))
    assert answers == [f"echo q{i}" + (f" @{settings[i % 3].temperature}" if settings[i % 3] else "") for i in range(9)]
    assert sorted(model.samplings, key=str) == sorted(settings, key=str) and len(model.batches) == 3  # one batch per setting
