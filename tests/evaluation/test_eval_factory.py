"""Building the evaluated policy: an OpenAI-compatible endpoint (local stand-in) and the worker pool."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Iterator

import pytest
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from deepeyes import model_args
from deepeyes.evaluation import __main__ as eval_cli
from deepeyes.evaluation.config import EvalConfig
from deepeyes.evaluation.factory import PolicyPool, build_policy, model_arguments
from deepeyes.evaluation.runner import evaluate
from deepeyes.policies.base import Generation
from deepeyes.policies.openai import OpenAIPolicy
from deepeyes.utils.processes import free_port


@pytest.fixture()
def chat_server() -> Iterator[tuple[str, list[dict]]]:
    """A local chat-completions endpoint answering with the first number in the question."""
    seen: list[dict] = []
    app = Flask("chat-standin")

    @app.post("/v1/chat/completions")
    def complete():
        body = request.get_json()
        seen.append(body)
        question = next(m for m in body["messages"] if m["role"] == "user")["content"]
        text = " ".join(part.get("text", "") for part in question) if isinstance(question, list) else question
        number = re.search(r"\d+", text).group()
        message = {"role": "assistant", "content": f"<think>reading</think><answer>{number}</answer>"}
        return jsonify({"choices": [{"message": message, "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 3}})

    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/v1", seen
    server.shutdown()
    thread.join()


def test_evaluates_through_an_openai_compatible_endpoint(make_tsv, chat_server, tmp_path):
    api_base, seen = chat_server
    path = make_tsv("Numbers", [{"index": i, "question": f"What is {i} times one?", "answer": str(i)} for i in range(4)])
    config = EvalConfig(
        api_base=api_base, served_model="standin", datasets=["Numbers"], lmudata=str(path.parent),
        output_dir=str(tmp_path / "out"), use_tools=False, show_progress=False, report=False, max_new_tokens=64, top_p=0.5,
    )
    assert isinstance(build_policy(config), OpenAIPolicy)
    results = evaluate(config)
    assert results["overall"]["accuracy"] == 1.0 and len(seen) == 4
    assert {body["model"] for body in seen} == {"standin"} and {body["max_tokens"] for body in seen} == {64}
    assert {body["top_p"] for body in seen} == {0.5}  # a shared model field the evaluation used to drop
    image_part = seen[0]["messages"][1]["content"][0]
    assert image_part["type"] == "image_url" and image_part["image_url"]["url"].startswith("data:image/png;base64,")


def test_the_model_settings_are_the_shared_group_with_one_spelling_per_field():
    """Issue 29: the evaluation declared its own copies of the model fields; now it takes
    :class:`ModelArguments` whole, so a flag reads the same here as in infer, the demo and the service."""
    shared = {f.name for f in dataclasses.fields(model_args.ModelArguments)}
    assert not shared & set(vars(EvalConfig)["__annotations__"]), "EvalConfig declares a model field again"
    argv = ["--model_path", "m", "--adapter_path", "a", "--api_base", "http://h/v1", "--served_model", "s", "--device", "cuda",
            "--dtype", "bfloat16", "--temperature", "0.7", "--top_p", "0.9", "--max_new_tokens", "33", "--tool_call_threshold", "0.1"]
    config, _ = eval_cli.parse_args([*argv, "--max_turns", "3"])
    assert model_arguments(config) == model_args.parse_args(argv, prog="infer", description="")[0]
    assert config.max_turns == 3 and isinstance(config, model_args.ModelArguments)
    with pytest.raises(ValueError, match="top_p"):
        EvalConfig(top_p=1.5)  # the group's own checks run for the evaluation too
    assert config.identity()["top_p"] == 0.9 and "top_p" not in EvalConfig().identity()  # old runs still resume


class ExclusiveCheckPolicy:
    """Fails if two threads use it at once; records how often it was used."""

    def __init__(self):
        self.in_use = threading.Lock()
        self.calls = 0

    def generate(self, messages, sampling=None) -> Generation:
        if not self.in_use.acquire(blocking=False):
            raise AssertionError("policy used by two threads at once")
        try:
            time.sleep(0.01)
            self.calls += 1
            return Generation("<answer>x</answer>")
        finally:
            self.in_use.release()


def test_pool_lends_each_policy_to_one_thread_at_a_time():
    policies = [ExclusiveCheckPolicy(), ExclusiveCheckPolicy()]
    pool = PolicyPool(policies)
    threads = [threading.Thread(target=lambda: [pool.generate([]) for _ in range(10)]) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(p.calls for p in policies) == 60 and all(p.calls > 0 for p in policies)
    with pytest.raises(ValueError, match="at least one policy"):
        PolicyPool([])


def test_one_local_copy_batches_the_turns_of_the_samples_in_flight(tiny_model_dir):
    """Turns requested together share one ``generate`` and get the text they would get alone."""
    from PIL import Image

    from deepeyes.chat import Message
    from deepeyes.policies.batching import BatchingPolicy
    from deepeyes.prompts import system_prompt, user_prompt

    config = EvalConfig(model_path=str(tiny_model_dir), max_new_tokens=12, batch_size=4, num_workers=1)
    policy = build_policy(config)
    assert isinstance(policy, BatchingPolicy)
    conversations = [
        [Message("system", system_prompt()), Message("user", user_prompt(f"What is {i} plus {i}?"), [Image.new("RGB", (56, 56), color)])]
        for i, color in enumerate(["red", "green", "blue", "white"])
    ]
    alone = [policy.policy.generate(messages).text for messages in conversations]
    barrier = threading.Barrier(len(conversations))

    def together(messages):
        barrier.wait()
        return policy.generate(messages).text

    threads_results: list[str | None] = [None] * len(conversations)
    threads = [threading.Thread(target=lambda i=i: threads_results.__setitem__(i, together(conversations[i])))
               for i in range(len(conversations))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert threads_results == alone
    assert policy.batches < len(conversations)  # at least two turns shared a generate
    assert policy.sampled_turns(conversations[0]) == []  # an evaluation keeps no turns


def test_several_local_copies_are_lent_one_thread_at_a_time(tiny_model_dir):
    import torch

    threads = torch.get_num_threads()  # build_policy gives each copy its share of the cores
    try:
        config = EvalConfig(model_path=str(tiny_model_dir), max_new_tokens=4, batch_size=4, num_workers=2)
        policy = build_policy(config)
        assert isinstance(policy, PolicyPool) and policy.size == 2
    finally:
        torch.set_num_threads(threads)
