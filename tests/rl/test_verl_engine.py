"""The verl engine: overrides compose against verl 0.9.1's own trainer config, and our agent
loop and reward function work inside verl's interfaces (in-process, with a stand-in server)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import verl.trainer.config as verl_config
import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from deepeyes import wire
from deepeyes.paths import REPO_ROOT
from deepeyes.rl import verl_launch
from deepeyes.rl.config import RLConfig, load_rl_config

VERL_CONFIG_DIR = str(Path(verl_config.__file__).parent)
DEFAULT_CONFIG = REPO_ROOT / "reinforcement_learning" / "configs" / "deepeyes_rl.yaml"


def _config(tmp_path: Path, tiny_model_dir: Path, rl_sample_dir: Path, tool_config_file: Path, *extra: str) -> RLConfig:
    return load_rl_config(
        DEFAULT_CONFIG,
        [
            "trainer.engine=verl",
            f"model.base_model={tiny_model_dir}",
            "model.sft_lora_path=null",
            f"data.rl_data_path={rl_sample_dir / 'rl' / 'train.parquet'}",
            f"tool.tool_manager_config={tool_config_file}",
            f"tool.search_cache_path={rl_sample_dir / 'image_search' / 'cache.json'}",
            f"output.dir={tmp_path / 'out'}",
            "verl.max_prompt_length=2048",
            "verl.max_response_length=2048",
            *extra,
        ],
    )


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=VERL_CONFIG_DIR, version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


@pytest.mark.parametrize("algorithm", ["grpo", "ppo"])
def test_overrides_compose_into_verls_trainer_config(tmp_path, tiny_model_dir, rl_sample_dir, tool_config_file, algorithm):
    from verl.utils.config import omega_conf_to_dataclass

    config = _config(tmp_path, tiny_model_dir, rl_sample_dir, tool_config_file, f"algorithm={algorithm}")
    paths = verl_launch.VerlPaths.plan(config)
    composed = _compose(verl_launch.build_overrides(config, paths, "http://127.0.0.1:5000"))
    assert composed.algorithm.adv_estimator == ("grpo" if algorithm == "grpo" else "gae")
    rollout = composed.actor_rollout_ref.rollout
    assert rollout.n == config.rollout.n and rollout.multi_turn.enable and rollout.multi_turn.max_assistant_turns == config.rollout.max_turns
    assert rollout.agent.default_agent_loop == verl_launch.AGENT_NAME
    assert rollout.agent.agent_loop_config_path == str(paths.agent_loop_config)
    assert rollout.agent.agent_loop_manager_class == verl_launch.AGENT_LOOP_MANAGER_CLASS
    reward = composed.reward.custom_reward_function
    assert reward.path == str(verl_launch.REWARD_FUNCTION_FILE) and reward.name == "compute_score"
    assert reward.reward_kwargs.server_url == "http://127.0.0.1:5000"
    assert reward.reward_kwargs.config_path == str(paths.reward_config) and reward.reward_kwargs.trajectory_dir == str(paths.root)
    assert list(composed.trainer.logger) == [*config.trainer.loggers, "file"]
    assert composed.actor_rollout_ref.model.path == str(tiny_model_dir)
    assert composed.actor_rollout_ref.actor.optim.lr == config.training.learning_rate
    # The sections verl turns into its typed configs accept our values.
    for node in (composed.algorithm, rollout, composed.actor_rollout_ref.actor, composed.actor_rollout_ref.model):
        omega_conf_to_dataclass(node)
    OmegaConf.resolve(composed)


def test_a_misspelt_override_is_refused_by_hydra(tmp_path, tiny_model_dir, rl_sample_dir, tool_config_file):
    """The composition check is real: an unknown key fails in verl's struct config."""
    config = _config(tmp_path, tiny_model_dir, rl_sample_dir, tool_config_file, "verl.extra_overrides=[actor_rollout_ref.rollout.max_turnz=3]")
    with pytest.raises(ConfigCompositionException):
        _compose(verl_launch.build_overrides(config, verl_launch.VerlPaths.plan(config), "http://127.0.0.1:5000"))


def test_dry_run_prints_the_full_command(tmp_path, tiny_model_dir, rl_sample_dir, tool_config_file):
    config_path = tmp_path / "rl.yaml"
    config = _config(tmp_path, tiny_model_dir, rl_sample_dir, tool_config_file)
    from deepeyes.config import to_dict

    config_path.write_text(yaml.safe_dump(to_dict(config)), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "reinforcement_learning" / "train.py"), "--config", str(config_path), "--dry-run"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    assert "verl.trainer.main_ppo" in result.stdout
    assert "actor_rollout_ref.rollout.agent.default_agent_loop=deepeyes_agent" in result.stdout
    assert "reward.custom_reward_function.name=compute_score" in result.stdout
    assert not (tmp_path / "out" / "verl").exists()  # a dry run prepares nothing


class ScriptedServer:
    """Stands in for verl's server manager: replays assistant turns as token ids, like vLLM.

    Each turn is sampled one character per token (a legal but non-canonical encoding that
    re-tokenizing the decoded text would never give back), stops after the token that
    completes a stop string or at ``<|im_end|>``, and returns a log-prob per token.
    """

    def __init__(self, tokenizer, turns: list[str]):
        self.tokenizer = tokenizer
        self.turns = turns
        self.calls: list[dict] = []
        self.returned: list[tuple[list[int], list[float]]] = []

    def sample(self, text: str) -> list[int]:
        end = "<|im_end|>"
        body, closed = (text[: -len(end)], True) if text.endswith(end) else (text, False)
        ids = [i for char in body for i in self.tokenizer.encode(char, add_special_tokens=False)]
        return ids + ([self.tokenizer.convert_tokens_to_ids(end)] if closed else [])

    async def generate(self, request_id, *, prompt_ids, sampling_params, image_data=None, **kwargs):
        from verl.workers.rollout.replica import TokenOutput

        self.calls.append({"request_id": request_id, "prompt_ids": list(prompt_ids), "sampling_params": sampling_params, "images": list(image_data or [])})
        ids = self.sample(self.turns[len(self.calls) - 1])
        for count in range(1, len(ids) + 1):  # the stop strings end generation, as vLLM's do
            if any(stop in self.tokenizer.decode(ids[:count]) for stop in sampling_params["stop"]):
                ids = ids[:count]
                break
        logprobs = [-0.01 * (len(self.returned) + 1) * (i + 1) for i in range(len(ids))]
        self.returned.append((ids, logprobs))
        return TokenOutput(token_ids=ids, log_probs=logprobs)


def _run_agent_loop(tmp_path, tiny_model_dir, rl_sample_dir, tool_config_file, reward_url, turns):
    """One prompt of the sample RL data through our agent loop as verl's worker runs it."""
    from transformers import AutoProcessor
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from deepeyes.rl.verl_agent_loop import DeepEyesAgentLoop
    from deepeyes.rl.verl_worker import rollout_slot
    from deepeyes.tool_manager import ToolManager

    config = _config(tmp_path, tiny_model_dir, rl_sample_dir, tool_config_file)
    paths = verl_launch.VerlPaths.plan(config)
    verl_launch.prepare(config, paths)
    composed = _compose(verl_launch.build_overrides(config, paths, reward_url))
    entry = yaml.safe_load(paths.agent_loop_config.read_text())[0]
    assert entry["_target_"] == verl_launch.AGENT_LOOP_CLASS and entry["name"] == verl_launch.AGENT_NAME

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    tokenizer = processor.tokenizer
    dataset = RLHFDataset(data_files=[str(f) for f in paths.train_files], tokenizer=tokenizer, config=composed.data, processor=processor)
    row = dataset[0]
    server = ScriptedServer(tokenizer, turns(str(row["reward_model"]["ground_truth"])))

    async def run_one():
        with ToolManager.from_config(tool_config_file) as tools:
            loop = DeepEyesAgentLoop(
                trainer_config=DictConfigWrap(composed),
                server_manager=server,
                tokenizer=tokenizer,
                processor=processor,
                dataset_cls=RLHFDataset,
                data_config=DictConfigWrap(composed.data),
                hf_model_type="qwen2_5_vl",
                tool_manager=tools,
                max_turns=entry["max_turns"],
                max_new_tokens=entry["max_new_tokens"],
            )
            with rollout_slot(step=3, sample=1):  # what verl's worker (ours) sets around each trajectory
                return await loop.run({"temperature": 1.0}, **row)

    return asyncio.run(run_one()), server, row, tokenizer


CODE_TURN = "<think>Measure first.</think>\n" + wire.code_action("print('size', image_1.size)")


@pytest.mark.slow
@pytest.mark.redis
def test_agent_loop_hands_verl_the_sampled_ids_and_the_trajectory(tmp_path, tiny_model_dir, rl_sample_dir, tool_config_file, reward_url):
    from deepeyes.rewards.scoring import score_trajectory
    from deepeyes.rl.verl_reward import RETURNED_KEYS, compute_score
    from deepeyes.trajectory import Trajectory, read_jsonl

    def turns(truth: str) -> list[str]:
        return [CODE_TURN + " trailing words the server ran on", f"<think>Done.</think>\n<answer>{truth}</answer><|im_end|>"]

    output, server, row, tokenizer = _run_agent_loop(tmp_path, tiny_model_dir, rl_sample_dir, tool_config_file, reward_url, turns)
    truth = str(row["reward_model"]["ground_truth"])

    # Two generations; the second prompt extends the first by exactly the sampled ids, the
    # template's turn close and the real sandbox output.
    assert len(server.calls) == 2 and server.calls[0]["request_id"] == server.calls[1]["request_id"]
    assert set(wire.STOP_STRINGS) - {"<|im_end|>"} <= set(server.calls[0]["sampling_params"]["stop"])
    first_prompt, second_prompt = server.calls[0]["prompt_ids"], server.calls[1]["prompt_ids"]
    first_ids = server.returned[0][0]
    assert second_prompt[: len(first_prompt) + len(first_ids)] == first_prompt + first_ids
    observation = tokenizer.decode(second_prompt[len(first_prompt) + len(first_ids) :])
    assert observation.startswith("<|im_end|>\n<|im_start|>user\n") and observation.endswith("<|im_start|>assistant\n")
    assert "Code execution result" in observation and "size (" in observation
    assert "trailing words" not in tokenizer.decode(second_prompt)
    # The question's image is resized and processed once: the same object is sent on every turn.
    assert len(server.calls[0]["images"]) == len(server.calls[1]["images"]) == 1
    assert server.calls[1]["images"][0] is server.calls[0]["images"][0]

    # verl's output: the prompt ends at the first assistant header; the ids under the mask
    # are exactly the ids the server returned (not a re-encoding: it would differ), with their log-probs.
    assert output.prompt_ids == first_prompt and tokenizer.decode(output.prompt_ids).endswith("<|im_start|>assistant\n")
    assert first_prompt + output.response_ids[: len(second_prompt) - len(first_prompt)] == second_prompt
    mask, logprobs = output.response_mask, output.response_logprobs
    generated = [t for t, m in zip(output.response_ids, mask, strict=True) if m]
    assert generated == server.returned[0][0] + server.returned[1][0]
    assert generated != tokenizer.encode(tokenizer.decode(generated), add_special_tokens=False)
    assert [lp for lp, m in zip(logprobs, mask, strict=True) if m] == server.returned[0][1] + server.returned[1][1]
    assert all(lp == 0.0 for lp, m in zip(logprobs, mask, strict=True) if not m)
    assert tokenizer.decode(generated) == CODE_TURN + f"<think>Done.</think>\n<answer>{truth}</answer><|im_end|>"
    assert len(output.multi_modal_data["images"]) == 1

    # verl's reward manager merges our extra_fields into extra_info: the hook scores the
    # trajectory the loop built, on the server and in-process alike.
    record = output.extra_fields["trajectory"]
    trajectory = Trajectory.from_dict(record)
    assert trajectory.tool_calls.code == 1 and trajectory.stop_reason == "answer" and trajectory.final_answer == truth
    assert output.extra_fields["tool_call_counts"] == trajectory.tool_calls.total  # verl logs tool_call_counts/* from it
    assert trajectory.metadata["step"] == 3 and trajectory.metadata["sample"] == 1 and trajectory.id.endswith("#1")
    assert trajectory.images and all(Path(image).is_absolute() for image in trajectory.images)  # the row's files, as the local engine records them
    assert [turn.model_text for turn in trajectory.turns] == [CODE_TURN, f"<think>Done.</think>\n<answer>{truth}</answer>"]
    solution = tokenizer.decode(output.response_ids, skip_special_tokens=True)
    extra_info = {**row["extra_info"], **output.extra_fields}
    expected = score_trajectory(record, row["reward_model"]["ground_truth"])
    remote = compute_score(row["data_source"], solution, row["reward_model"]["ground_truth"], extra_info, server_url=reward_url)
    local = compute_score(row["data_source"], solution, row["reward_model"]["ground_truth"], extra_info, trajectory_dir=str(tmp_path / "log"))
    assert remote == local == {**{key: float(expected[key]) for key in RETURNED_KEYS}, "judge_fallback": 0.0}
    (logged,) = read_jsonl(tmp_path / "log" / "trajectories.jsonl")  # the hook logs what it scored, with the step
    assert logged.reward == local and logged.metadata["step"] == 3
    wrong = compute_score(row["data_source"], solution, truth + "0 and something else", extra_info, server_url=reward_url)
    assert remote["accuracy"] == 1.0 and wrong["accuracy"] == 0.0
    assert remote["tool_efficiency"] > 0 and remote["score"] > wrong["score"]


def test_a_turn_keeps_the_sampled_ids_up_to_its_stop(tiny_model_dir):
    from transformers import AutoTokenizer

    from deepeyes.rl.verl_agent_loop import sampled_turn_length

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    encode = lambda text: tokenizer.encode(text, add_special_tokens=False)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    code = encode(CODE_TURN)
    assert sampled_turn_length(code + encode(" and more"), tokenizer) == len(code)
    assert sampled_turn_length(code, tokenizer) == len(code)
    answer = encode("<answer>4</answer>") + [im_end]
    assert sampled_turn_length(answer + encode("junk"), tokenizer) == len(answer)
    unfinished = encode("<think>still going")  # cut by max_new_tokens: all of it is the turn
    assert sampled_turn_length(unfinished, tokenizer) == len(unfinished)
    search = encode(wire.text_search_action("q")) + [im_end]
    assert sampled_turn_length(search, tokenizer) == len(search) - 1


def test_response_cut_never_splits_an_image(tiny_model_dir):
    from transformers import AutoTokenizer

    from deepeyes.rl.verl_agent_loop import _cut_whole_images

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    start, pad, end = (tokenizer.convert_tokens_to_ids(t) for t in ("<|vision_start|>", "<|image_pad|>", "<|vision_end|>"))
    ids = [5, start, pad, pad, end, 6, 7, start, pad, pad, pad, end, 8]
    assert _cut_whole_images(ids, 100, ["a", "b"], tokenizer) == (len(ids), ["a", "b"])
    assert _cut_whole_images(ids, 9, ["a", "b"], tokenizer) == (7, ["a"])  # inside the second image: cut before it
    assert _cut_whole_images(ids, 12, ["a", "b"], tokenizer) == (12, ["a", "b"])  # just after it: both kept
    assert _cut_whole_images(ids, 3, ["a", "b"], tokenizer) == (1, [])


def test_a_requests_sampling_replaces_the_trainers_for_its_turns(tiny_model_dir):
    """RL requests carry no sampling, so verl's (the trainer's) settings sample every turn; a request
    that carries some (``Policy.generate(messages, sampling)``) gets exactly those, with the stop strings kept."""
    from transformers import AutoTokenizer

    from deepeyes.policies.base import SamplingParams
    from deepeyes.rl.verl_agent_loop import ServerPolicy

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    policy = ServerPolicy(None, None, tokenizer, None, {"temperature": 1.0, "top_p": 0.9, "logprobs": True}, 64, 1, 2, 128)  # type: ignore[arg-type]
    trainers = policy.turn_sampling(None)
    assert (trainers["temperature"], trainers["top_p"], trainers["max_new_tokens"], trainers["logprobs"]) == (1.0, 0.9, 64, True)
    requests = policy.turn_sampling(SamplingParams(temperature=0.0, top_p=0.5, max_new_tokens=16))
    assert (requests["temperature"], requests["top_p"], requests["max_new_tokens"], requests["logprobs"]) == (0.0, 0.5, 16, True)
    assert requests["stop"] == trainers["stop"] and set(wire.STOP_STRINGS) - {"<|im_end|>"} <= set(requests["stop"])
    assert policy.turn_sampling(None) == trainers  # the request's settings did not stick
