"""Dynamic batching of concurrent generation calls onto one model.

The agent loop runs trajectories in threads and asks the policy for one turn at a time;
one model serving those calls one by one leaves the machine idle between tiny matrix
products. :class:`BatchingPolicy` gathers the calls that arrive together (all
trajectories start at once, and come back from fast tool calls within milliseconds) and
answers them with one batched ``generate`` — the same idea as an inference server's
continuous batching, at turn granularity. Each call carries its own sampling settings; one
batch holds calls with equal settings only, since one ``generate_batch`` samples with one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from deepeyes.chat import Message
from deepeyes.policies.base import Generation, SamplingParams
from deepeyes.policies.hf import HFPolicy


@dataclass(eq=False)  # identity, not value: many trajectories ask the very same first question
class _Pending:
    messages: list[Message]
    sampling: SamplingParams | None
    result: Generation | None = None
    error: Exception | None = None
    done: bool = False


class BatchingPolicy:
    """A :class:`~deepeyes.policies.base.Policy` that batches calls arriving within ``gather_s``.

    The first caller to find the model idle becomes the batch leader: it waits up to
    ``gather_s`` (or until ``max_batch`` calls with its sampling settings are queued), runs
    one ``generate_batch`` for those calls, hands every caller its result, and wakes them;
    calls with other settings wait for a batch of their own. ``busy_s`` is the time
    spent generating, for the step's time split.
    """

    def __init__(self, policy: HFPolicy, max_batch: int, gather_s: float = 0.05, keep_turns: bool = True):
        """``keep_turns``: remember every conversation's sampled turns for :meth:`sampled_turns`
        (RL trains on them); an evaluation, which only needs the text, passes False so that
        memory does not grow with the number of samples."""
        self.policy = policy
        self.keep_turns = keep_turns
        self.max_batch = max(1, max_batch)
        self.gather_s = gather_s
        self.busy_s = 0.0
        self.batches = 0
        self._queue: list[_Pending] = []
        self._running = False
        self._cond = threading.Condition()
        #: Per conversation (by identity: the agent loop appends to one list per trajectory):
        #: the conversation itself and, for each turn generated, ``(messages before it, Generation)``.
        self._sampled: dict[int, tuple[list[Message], list[tuple[int, Generation]]]] = {}

    def sampled_turns(self, messages: list[Message]) -> list[tuple[int, Generation]]:
        """Every turn generated for the conversation ``messages``, in order: ``(prefix length, Generation)``.

        ``messages[:prefix length]`` is what the turn was conditioned on; the generation
        carries the sampled ids and finish reason RL trains on.
        """
        entry = self._sampled.get(id(messages))
        if entry is None or entry[0] is not messages:
            return []
        return list(entry[1])

    def generate(self, messages: list[Message], sampling: SamplingParams | None = None) -> Generation:
        """The next turn of ``messages`` with ``sampling`` (None: the wrapped policy's defaults)."""
        pending = _Pending(messages, sampling)
        with self._cond:
            self._queue.append(pending)
            self._cond.notify_all()
            while not pending.done and self._running:
                self._cond.wait()
            if pending.done:
                return self._unwrap(pending)
            # The model is idle and this call is unanswered: lead a batch that includes it.
            self._running = True
            deadline = time.monotonic() + self.gather_s
            while len(self._alike(pending)) < self.max_batch and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(timeout=left)
            batch = self._alike(pending)[: self.max_batch]
            self._queue = [item for item in self._queue if item not in batch]
        started = time.perf_counter()
        try:
            results = self.policy.generate_batch([item.messages for item in batch], pending.sampling)
            for item, result in zip(batch, results, strict=True):
                item.result = result
                if self.keep_turns:
                    entry = self._sampled.setdefault(id(item.messages), (item.messages, []))
                    entry[1].append((len(item.messages), result))
        except Exception as exc:  # noqa: BLE001 - re-raised in every caller of the batch
            for item in batch:
                item.error = exc
        finally:
            with self._cond:
                self.busy_s += time.perf_counter() - started
                self.batches += 1
                for item in batch:
                    item.done = True
                self._running = False
                self._cond.notify_all()
        return self._unwrap(pending)

    def _alike(self, pending: _Pending) -> list[_Pending]:
        """``pending`` first, then the queued calls that can share its batch (equal settings), in arrival order."""
        return [pending, *(item for item in self._queue if item is not pending and item.sampling == pending.sampling)]

    @staticmethod
    def _unwrap(pending: _Pending) -> Generation:
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result
