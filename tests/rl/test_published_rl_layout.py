"""A miniature of the published DeepEyesV2_RL download through both engines' data paths.

The folder holds ``perception_all_1/2.parquet``, ``reason.parquet`` and ``search.parquet``
(rows with ``env_name: deepeyes_v2`` and relative image paths), as the data set unpacks.
The local engine reads it with ``load_prompts`` and drops over-budget prompts; the verl
engine gets every file in ``data.train_files`` and verl's own over-long filter switched on.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from deepeyes.paths import REPO_ROOT
from deepeyes.rl import verl_launch
from deepeyes.rl.config import DataConfig, ModelConfig, OutputConfig, RLConfig
from deepeyes.rl.data import fit_prompt_budget, load_prompts, prompt_budget
from deepeyes.rl.data_sources import RLDataSourceError

PARTS = [("perception_all_1.parquet", "perception", 3), ("perception_all_2.parquet", "perception", 2), ("reason.parquet", "reason", 2), ("search.parquet", "search", 1)]


@pytest.fixture()
def published_rl(tmp_path: Path) -> Path:
    folder = tmp_path / "DeepEyesV2_RL"
    (folder / "images").mkdir(parents=True)
    for name, source, n in PARTS:
        rows = []
        for i in range(n):
            image = f"images/{source}_{i}.png"
            Image.new("RGB", (56 * (i + 1), 56), (40 * i, 90, 200)).save(folder / image)
            rows.append({
                "data_source": source,
                "prompt": [{"role": "user", "content": f"<image>\n{source} question {i}?"}],
                "images": [{"image": image}],
                "ability": source,
                "env_name": "deepeyes_v2",
                "reward_model": {"style": "rule", "ground_truth": str(i)},
                "extra_info": {"index": i, "question": f"{source} question {i}?", "answer": str(i), "split": "train"},
            })
        pq.write_table(pa.Table.from_pylist(rows), folder / name)
    return folder


def _config(tiny_model_dir: Path, data: Path, out: Path, max_prompt_length: int = 4096) -> RLConfig:
    return RLConfig(
        model=ModelConfig(base_model=str(tiny_model_dir), sft_lora_path=None),
        data=DataConfig(rl_data_path=str(data), max_prompt_length=max_prompt_length),
        output=OutputConfig(dir=str(out)),
    )


def test_the_folder_loads_every_part_with_its_data_source(published_rl: Path) -> None:
    prompts = load_prompts(published_rl)
    assert len(prompts) == sum(n for _, _, n in PARTS)
    assert {p.data_source for p in prompts} == {"perception", "reason", "search"}
    assert prompts[0].uid == "perception_all_1:0" and prompts[-1].uid == "search:0"  # parts in order, ids kept apart
    assert all(p.images[0].is_file() for p in prompts)


def test_the_prompt_budget_keeps_the_data_and_drops_what_exceeds_it(
    published_rl: Path, tiny_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prompts = load_prompts(published_rl)
    assert fit_prompt_budget(prompts, prompt_budget(_config(tiny_model_dir, published_rl, tmp_path)), "data.rl_data_path") == prompts
    full = prompt_budget(_config(tiny_model_dir, published_rl, tmp_path, max_prompt_length=10**6))
    measured = sorted(_measure(full, p) for p in prompts)
    assert measured[0] < measured[-1]  # wider images cost more vision tokens
    limit = measured[len(measured) // 2]
    tight = prompt_budget(_config(tiny_model_dir, published_rl, tmp_path, max_prompt_length=limit))
    with caplog.at_level(logging.WARNING):
        kept = fit_prompt_budget(prompts, tight, "data.rl_data_path")
    assert 0 < len(kept) < len(prompts)
    assert all(_measure(full, p) <= limit for p in kept)
    assert f"dropped {len(prompts) - len(kept)} of {len(prompts)} prompts" in caplog.text
    with pytest.raises(RLDataSourceError, match="all 8 prompts exceed"):
        fit_prompt_budget(prompts, prompt_budget(_config(tiny_model_dir, published_rl, tmp_path, max_prompt_length=1)), "data.rl_data_path")


def _measure(budget, prompt) -> int:
    from deepeyes.prompts import system_prompt, user_prompt

    return budget.prompt_tokens(system_prompt() + "\n" + user_prompt(prompt.question, len(prompt.images)), prompt.images)


def test_verl_gets_every_part_and_filters_overlong_prompts(published_rl: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    config = _config(tiny_model_dir, published_rl, tmp_path / "out")
    paths = verl_launch.VerlPaths.plan(config)
    verl_launch.prepare(config, paths)
    overrides = verl_launch.build_overrides(config, paths, "http://127.0.0.1:5000")
    expected = "[" + ",".join(str(paths.root / "data" / name) for name, _, _ in PARTS) + "]"
    assert f"data.train_files={expected}" in overrides
    assert "data.filter_overlong_prompts=true" in overrides
    for name, _, n in PARTS:
        rows = pq.read_table(paths.root / "data" / name).to_pylist()
        assert len(rows) == n
        assert all(Path(entry["image"]).is_absolute() and Path(entry["image"]).is_file() for row in rows for entry in row["images"])


@pytest.mark.redis
def test_train_py_trains_on_the_published_folder_after_the_budget_filter(
    published_rl: Path, tiny_model_dir: Path, tool_config_file: Path, rl_sample_dir: Path, tmp_path: Path
) -> None:
    full = prompt_budget(_config(tiny_model_dir, published_rl, tmp_path, max_prompt_length=10**6))
    prompts = load_prompts(published_rl)
    limit = sorted(_measure(full, p) for p in prompts)[len(prompts) // 2]
    kept = sum(_measure(full, p) <= limit for p in prompts)
    output = tmp_path / "run"
    overrides = [
        f"model.base_model={tiny_model_dir}", "model.sft_lora_path=null",
        f"data.rl_data_path={published_rl}", f"data.max_prompt_length={limit}", "data.batch_size=2",
        f"tool.tool_manager_config={tool_config_file}", f"tool.search_cache_path={rl_sample_dir / 'image_search' / 'cache.json'}",
        f"evaluation.reward_config={REPO_ROOT / 'reinforcement_learning' / 'evaluation_server' / 'reward_config.yaml'}",
        f"output.dir={output}", "rollout.n=2", "rollout.max_turns=1", "rollout.max_new_tokens=8",
        "training.batch_size=2", "training.gradient_accumulation_steps=2", "trainer.total_steps=1", "trainer.eval_steps=0",
    ]
    argv = [sys.executable, str(REPO_ROOT / "reinforcement_learning" / "train.py"), "--config",
            str(REPO_ROOT / "reinforcement_learning" / "configs" / "deepeyes_rl.yaml"), "--no-progress"]
    for override in overrides:
        argv += ["--set", override]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"data.rl_data_path: dropped {len(prompts) - kept} of {len(prompts)} prompts longer than max_prompt_length={limit}" in result.stderr
    assert "finished 1 steps" in result.stdout
    trained_on = {json.loads(line)["metadata"]["prompt_uid"] for line in (output / "trajectories.jsonl").read_text().splitlines()}
    allowed = {p.uid for p in prompts if _measure(full, p) <= limit}
    assert trained_on and trained_on <= allowed  # only prompts within the budget were rolled out
