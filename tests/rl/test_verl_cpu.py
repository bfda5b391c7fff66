"""verl's own trainer end to end on CPU: Ray, verl's FSDP2 actor over gloo, our agent loop
with live tools on the ``hf`` rollout backend, our reward, GRPO steps and a checkpoint."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import uuid

import pytest
import yaml
from process_watch import MARK_VARIABLE, marked_survivors

from deepeyes.paths import REPO_ROOT
from deepeyes.rewards.scoring import score_trajectory
from deepeyes.rl import verl_launch
from deepeyes.rl.config import load_rl_config
from deepeyes.trajectory import read_jsonl

CONFIGS = REPO_ROOT / "reinforcement_learning" / "configs"
CPU_CONFIG = CONFIGS / "deepeyes_rl_verl_cpu.yaml"
CLUSTER_CONFIG = CONFIGS / "deepeyes_rl_cluster.yaml"

#: What may differ between the CPU run and the cluster recipe: the rollout backend, sizes and
#: resources (devices, precision, processes, service addresses, data and model locations).
RECIPE_DIFFERENCES = {
    "model.base_model", "model.sft_lora_required", "model.dtype", "model.device",
    "data.rl_data_path", "data.batch_size", "data.max_prompt_length",
    "tool.code_sandbox_ports", "tool.redis_port", "tool.search_cache_path",
    "evaluation.server_url",
    "training.learning_rate", "training.batch_size",
    "rollout.n", "rollout.max_turns", "rollout.max_new_tokens", "rollout.max_context_tokens",
    "trainer.total_steps", "trainer.experiment_name",
    "output.dir", "output.save_steps",
    "verl.n_gpus_per_node", "verl.rollout_backend", "verl.tensor_model_parallel_size",
    "verl.max_prompt_length", "verl.max_response_length", "verl.agent_workers",
}  # fmt: skip


def _leaves(node: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        out.update(_leaves(value, name + ".") if isinstance(value, dict) else {name: value})
    return out


def test_the_cpu_run_is_the_cluster_recipe_with_backend_sizes_and_resources_changed():
    cpu, cluster = (_leaves(yaml.safe_load(path.read_text())) for path in (CPU_CONFIG, CLUSTER_CONFIG))
    assert cpu.keys() == cluster.keys()
    differing = {key for key in cpu if cpu[key] != cluster[key]}
    assert differing <= RECIPE_DIFFERENCES, differing - RECIPE_DIFFERENCES
    assert cpu["verl.rollout_backend"] == "hf" and cluster["verl.rollout_backend"] == "vllm"
    assert cpu["model.device"] == "cpu" and cluster["model.device"] == "cuda"


def test_a_cpu_run_loads_the_cpu_plugin_into_verl_and_a_gpu_run_does_not(tmp_path):
    cpu = load_rl_config(CPU_CONFIG, [f"output.dir={tmp_path}"])
    cluster = load_rl_config(CLUSTER_CONFIG, [f"output.dir={tmp_path}"])
    cpu_env = verl_launch.environment(cpu, verl_launch.VerlPaths.plan(cpu))
    assert cpu_env["VERL_PLATFORM"] == "cpu" and cpu_env["VERL_USE_EXTERNAL_MODULES"].split(",")[0] == verl_launch.CPU_PLUGIN_MODULE
    assert "VERL_PLATFORM" not in verl_launch.environment(cluster, verl_launch.VerlPaths.plan(cluster))
    overrides = verl_launch.build_overrides(cpu, verl_launch.VerlPaths.plan(cpu), "http://127.0.0.1:1")
    assert "actor_rollout_ref.rollout.name=hf" in overrides and "trainer.device=cpu" in overrides
    assert "+ray_kwargs.ray_init.num_gpus=1" in overrides
    cluster_overrides = verl_launch.build_overrides(cluster, verl_launch.VerlPaths.plan(cluster), "http://127.0.0.1:1")
    assert "trainer.device=cpu" not in cluster_overrides and "actor_rollout_ref.rollout.name=vllm" in cluster_overrides


@pytest.mark.slow
@pytest.mark.redis
def test_verls_trainer_runs_grpo_steps_on_cpu(tmp_path, rl_sample_dir, tool_config_file):
    out = tmp_path / "run"
    argv = [
        sys.executable, str(REPO_ROOT / "reinforcement_learning" / "train.py"), "--config", str(CPU_CONFIG),
        "--set", f"output.dir={out}", "--set", "model.sft_lora_path=null",
        "--set", f"data.rl_data_path={rl_sample_dir / 'rl' / 'train.parquet'}",
        "--set", f"tool.search_cache_path={rl_sample_dir / 'image_search' / 'cache.json'}",
        "--set", f"tool.tool_manager_config={tool_config_file}",
    ]  # fmt: skip
    mark = uuid.uuid4().hex  # inherited by every process the run starts, Ray's workers and their Redis included
    result = subprocess.run(argv, check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1500,
                            env={**os.environ, MARK_VARIABLE: mark})
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    # Issue 30, item 9: a successful run left a redis-server (started by an agent-loop worker) running.
    assert not marked_survivors(mark, 20.0)
    root = out / "verl"

    # Two GRPO steps, each logged by verl (tracking.jsonl) and joined with our step metrics in
    # metrics.jsonl, flat as the local engine writes it; a checkpoint after the second.
    tracked = [json.loads(line) for line in (root / "tracking.jsonl").read_text().splitlines()]
    records = [json.loads(line) for line in (root / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in tracked] == [r["step"] for r in records] == [1, 2]
    for record, verl_record in zip(records, tracked, strict=True):
        for key in ("critic/score/mean", "actor/pg_loss", "actor/grad_norm", "timing_s/gen", "timing_s/update_actor", "timing_s/step", "tool_call_counts/mean"):
            assert math.isfinite(record[key]) and record[key] == verl_record["data"][key], key
        for key in ("reward/accuracy", "tools/calls_per_trajectory", "rollout/turns"):
            assert math.isfinite(record[key]), key
    assert (root / "checkpoints" / "latest_checkpointed_iteration.txt").read_text().strip() == "2"
    assert any((root / "checkpoints" / "global_step_2" / "actor").iterdir())

    # Our reward hook logged every scored trajectory (2 prompts x n=2 per step, schema-checked on
    # read) with its step, and verl's reward for each step is our score of exactly those trajectories.
    trajectories = read_jsonl(root / "trajectories.jsonl")
    assert len(trajectories) == 2 * 2 * 2
    assert all(t.turns and t.stop_reason and t.reward is not None for t in trajectories)
    for record in records:
        step = [t for t in trajectories if t.metadata["step"] == record["step"]]
        assert sorted(t.metadata["sample"] for t in step) == [0, 0, 1, 1]
        scores = [score_trajectory(t)["score"] for t in step]
        assert [t.reward["score"] for t in step] == pytest.approx(scores)
        assert record["critic/score/mean"] == pytest.approx(sum(scores) / len(scores), abs=1e-5)


def test_the_hf_rollout_server_samples_ids_with_log_probs_and_loads_new_weights(tiny_model_dir):
    import asyncio

    import torch

    from deepeyes.rl.verl_cpu.rollout import HFRolloutServer

    server = HFRolloutServer(str(tiny_model_dir))
    prompt = server.tokenizer.encode("<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)
    torch.manual_seed(0)
    out = asyncio.run(server.generate(prompt, {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 64}, request_id="r"))
    assert 0 < len(out.token_ids) <= 64 and len(out.log_probs) == len(out.token_ids)
    assert all(lp <= 0.0 for lp in out.log_probs)
    assert not set(out.token_ids) & set(server.suppressed_ids)  # no vision placeholder is ever sampled
    assert out.token_ids[-1] in server.end_ids or len(out.token_ids) == 64
    greedy = {"temperature": 0.0, "max_new_tokens": 8}
    assert asyncio.run(server.generate(prompt, greedy, request_id="a")).token_ids == asyncio.run(server.generate(prompt, greedy, request_id="b")).token_ids

    name, weight = next((n, p) for n, p in server.model.state_dict().items() if n.endswith("q_proj.weight"))
    assert server.update_weights({name: torch.zeros_like(weight)}, version=3) == 1
    assert float(server.model.state_dict()[name].abs().sum()) == 0.0 and server.weight_version == 3
    with pytest.raises(ValueError, match="no weights"):
        server.update_weights({})
    with pytest.raises(ValueError, match="does not have"):
        server.update_weights({"not.a.parameter": weight})


_PROCESS_GROUP_PROBE = """
import os, socket, sys
import torch.distributed as dist
with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), VERL_PLATFORM="cpu")
import deepeyes.rl.verl_cpu  # registers the CPU platform
from verl.utils.distributed import initialize_global_process_group_ray
if sys.argv[1] == "verl-alone":
    os.environ.pop("MASTER_ADDR")  # the platform then leaves the group to verl (rendezvous by URL)
    os.environ["DIST_INIT_METHOD"] = f"tcp://127.0.0.1:{port}"
try:
    initialize_global_process_group_ray()
except ValueError as error:
    print("refused:", str(error).split(".")[0]); sys.exit(0)
print("group:", dist.get_backend(), dist.get_world_size())
"""


@pytest.mark.parametrize("mode", ["with-platform", "verl-alone"])
def test_the_cpu_platform_gives_verl_a_gloo_process_group(mode):
    """verl alone builds 'cpu:gloo,cpu:gloo' and torch refuses it; the platform makes the group first."""
    result = subprocess.run(
        [sys.executable, "-c", _PROCESS_GROUP_PROBE, mode], check=True, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT
    )
    expected = "group: gloo 1" if mode == "with-platform" else "refused: Duplicate device type cpu"
    assert expected in result.stdout, result.stdout + result.stderr[-2000:]
