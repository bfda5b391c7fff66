"""Our agent loop inside verl with a video row: the clip reaches the server and verl's update.

A row with a video is copied by the launch, made an item by verl's own ``RLHFDataset`` and
run by :class:`~deepeyes.rl.verl_agent_loop.DeepEyesAgentLoop` against a scripted server
(no verl run): the prompt holds the video's tokens, the server gets the frames as
``video_data``, and the output's ``multi_modal_data["videos"]`` gives verl's processor the
same tokens back with ``pixel_values_videos``, ``video_grid_thw`` and ``second_per_grid_ts``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import verl.trainer.config as verl_config
from hydra import compose, initialize_config_dir
from video_media import write_mp4

from deepeyes.paths import REPO_ROOT
from deepeyes.rl import verl_launch
from deepeyes.rl.config import load_rl_config
from deepeyes.tool_manager import ToolManager
from deepeyes.wire import VIDEO_PAD

DEFAULT_CONFIG = REPO_ROOT / "reinforcement_learning" / "configs" / "deepeyes_rl.yaml"
ANSWER = "<think>It moves.</think>\n<answer>right</answer><|im_end|>"


class AnsweringServer:
    """Stands in for verl's server manager: answers at once, and keeps what each call got."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.calls: list[dict[str, Any]] = []

    async def generate(self, request_id, *, prompt_ids, sampling_params, image_data=None, video_data=None, **kwargs):
        from verl.workers.rollout.replica import TokenOutput

        self.calls.append({"prompt_ids": list(prompt_ids), "images": image_data, "videos": video_data, **kwargs})
        return TokenOutput(token_ids=self.tokenizer.encode(ANSWER, add_special_tokens=False), log_probs=None)


def test_the_agent_loop_sends_the_video_to_the_server_and_to_verls_update(tmp_path: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoProcessor
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap
    from verl.utils.dataset.rl_dataset import RLHFDataset
    from verl.utils.tokenizer.tokenizer import build_multimodal_processor_inputs

    from deepeyes.rl.verl_agent_loop import DeepEyesAgentLoop

    write_mp4(tmp_path / "rl" / "clips" / "moving.mp4", count=6, fps=2)
    row = {
        "data_source": "synthetic_video",
        "prompt": [{"role": "user", "content": "<video>\nWhich way does the square move?"}],
        "videos": [{"video": "clips/moving.mp4"}],
        "reward_model": {"ground_truth": "right", "style": "rule"},
        "extra_info": {"index": 0, "question": "Which way does the square move?"},
    }
    pq.write_table(pa.Table.from_pylist([row]), tmp_path / "rl" / "train.parquet")
    config = load_rl_config(
        DEFAULT_CONFIG,
        [f"model.base_model={tiny_model_dir}", "model.sft_lora_path=null", f"data.rl_data_path={tmp_path / 'rl' / 'train.parquet'}",
         "data.batch_size=1", "tool.search_cache_path=null", "trainer.engine=verl", f"output.dir={tmp_path / 'out'}"],
    )
    paths = verl_launch.VerlPaths.plan(config)
    verl_launch.prepare(config, paths)
    with initialize_config_dir(config_dir=str(Path(verl_config.__file__).parent), version_base=None):
        composed = compose(config_name="ppo_trainer", overrides=verl_launch.build_overrides(config, paths, "http://127.0.0.1:1"))
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    tokenizer = processor.tokenizer
    item = RLHFDataset(data_files=[str(f) for f in paths.train_files], tokenizer=tokenizer, config=composed.data, processor=processor)[0]
    server = AnsweringServer(tokenizer)

    async def run_one():
        loop = DeepEyesAgentLoop(
            trainer_config=DictConfigWrap(composed),
            server_manager=server,
            tokenizer=tokenizer,
            processor=processor,
            dataset_cls=RLHFDataset,
            data_config=DictConfigWrap(composed.data),
            hf_model_type="qwen2_5_vl",
            tool_manager=ToolManager(),  # the model answers at once: no tool is contacted
            max_turns=1,
        )
        return await loop.run({"temperature": 1.0}, **item)

    output = asyncio.run(run_one())

    (call,) = server.calls
    (video,) = call["videos"]
    frames, metadata = video
    assert frames.shape[0] == 6 and metadata["fps"] == 2.0  # six frames at the clip's sampled 2 fps
    assert call["images"] is None
    # 64x48 frames on the 28-px grid: 56x56, 4x4 patches of 14 px; six frames in temporal patches of two.
    assert call["mm_processor_output"][0]["video_grid_thw"].tolist() == [[3, 4, 4]]  # what SGLang would get instead
    assert output.multi_modal_data == {"videos": [video]}
    video_pad = tokenizer.convert_tokens_to_ids(VIDEO_PAD)
    assert output.prompt_ids == call["prompt_ids"] and output.prompt_ids.count(video_pad) == 3 * 4 * 4 // 4  # 2x2 patches per token

    # What verl computes for the update from the output (AgentLoopWorker._compute_multi_modal_inputs):
    # the same video tokens, with the features and the seconds per temporal patch.
    text = tokenizer.decode(output.prompt_ids, skip_special_tokens=False).replace(VIDEO_PAD * output.prompt_ids.count(video_pad), VIDEO_PAD)
    inputs = build_multimodal_processor_inputs(processor, text=[text], videos=output.multi_modal_data["videos"])
    assert inputs["input_ids"][0].tolist() == output.prompt_ids
    assert inputs["video_grid_thw"].tolist() == [[3, 4, 4]] and inputs["second_per_grid_ts"].tolist() == [1.0]
    assert inputs["pixel_values_videos"].shape[0] == 3 * 4 * 4
