"""Published RL layouts: several parquet files, env_name checks, prompt-budget filtering."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from deepeyes.rl.data_sources import (
    PromptBudget,
    RLDataSourceError,
    check_env_names,
    expand_data_files,
    filter_overlong_prompts,
    image_token_count,
)


def _rows(data_source: str, env_name: str | None, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        row = {
            "data_source": data_source,
            "prompt": [{"role": "user", "content": f"<image>\nquestion {i}"}],
            "images": [{"image": f"images/{data_source}_{i}.png"}],
            "reward_model": {"style": "rule", "ground_truth": str(i)},
            "extra_info": {"index": i, "question": f"question {i}", "answer": str(i), "split": "train"},
        }
        if env_name is not None:
            row["env_name"] = env_name
        rows.append(row)
    return rows


@pytest.fixture()
def published_rl(tmp_path: Path) -> Path:
    """A miniature DeepEyesV2_RL download: perception parts, reason, search and a V* validation file."""
    folder = tmp_path / "rl"
    folder.mkdir()
    for name, source, n in [
        ("perception_all_1.parquet", "perception", 3),
        ("perception_all_2.parquet", "perception", 2),
        ("reason.parquet", "reason", 2),
        ("search.parquet", "search", 2),
        ("vstar_test.parquet", "vstar-test", 1),
    ]:
        pq.write_table(pa.Table.from_pylist(_rows(source, "deepeyes_v2", n)), folder / name)
    return folder


def test_a_folder_expands_to_its_parquet_files_in_order(published_rl: Path) -> None:
    names = [p.name for p in expand_data_files(str(published_rl))]
    assert names == ["perception_all_1.parquet", "perception_all_2.parquet", "reason.parquet", "search.parquet", "vstar_test.parquet"]


def test_globs_and_comma_lists_expand_without_duplicates(published_rl: Path) -> None:
    spec = f"{published_rl}/perception_all_*.parquet,{published_rl}/reason.parquet,{published_rl}/perception_all_1.parquet"
    assert [p.name for p in expand_data_files(spec)] == ["perception_all_1.parquet", "perception_all_2.parquet", "reason.parquet"]


def test_an_entry_without_parquet_is_named(tmp_path: Path) -> None:
    with pytest.raises(RLDataSourceError, match="nothing_here"):
        expand_data_files(str(tmp_path / "nothing_here"))


def test_published_env_names_pass_and_are_counted(published_rl: Path) -> None:
    counts = check_env_names(expand_data_files(str(published_rl)))
    assert counts == {"deepeyes_v2": 10}


def test_unknown_env_names_fail_with_each_name_its_count_and_file(published_rl: Path) -> None:
    pq.write_table(pa.Table.from_pylist(_rows("search", "web_browser", 4) + _rows("search", "sql_env", 1)), published_rl / "extra.parquet")
    pq.write_table(pa.Table.from_pylist(_rows("vstar-test", "web_browser", 2)), published_rl / "val.parquet")
    with pytest.raises(RLDataSourceError) as error:
        check_env_names(expand_data_files(str(published_rl)))
    message = str(error.value)
    assert "'web_browser': 6 rows in extra.parquet, val.parquet" in message  # train and validation files alike
    assert "'sql_env': 1 rows in extra.parquet" in message


def test_rows_without_env_name_use_the_default_environment(tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pylist(_rows("perception", None, 3)), tmp_path / "plain.parquet")
    assert check_env_names([tmp_path / "plain.parquet"]) == {"": 3}


@pytest.mark.parametrize(
    ("size", "max_pixels", "tokens"),
    [
        ((224, 224), 224 * 224, 64),  # 8×8 cells of 28 px
        ((448, 448), 224 * 224, 64),  # shrunk to fit max_pixels
        ((560, 280), 1024 * 28 * 28, 200),  # 20×10 cells, within the limit
    ],
)
def test_image_tokens_follow_qwen_resizing(size: tuple[int, int], max_pixels: int, tokens: int) -> None:
    assert image_token_count(size, 4 * 28 * 28, max_pixels) == tokens


def test_overlong_prompts_are_dropped_with_a_count(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    small, large = tmp_path / "small.png", tmp_path / "large.png"
    Image.new("RGB", (56, 56)).save(small)  # 4 tokens
    Image.new("RGB", (560, 560)).save(large)  # 400 tokens
    rows = [("short question", [small]), ("another short question", [small]), ("big picture", [large])]
    budget = PromptBudget(max_prompt_length=100, count_text_tokens=lambda text: len(text.split()))
    kept = filter_overlong_prompts(rows, lambda r: r[0], lambda r: r[1], budget, "train.parquet")
    assert [r[0] for r in kept] == ["short question", "another short question"]
    assert "dropped 1 of 3 prompts longer than max_prompt_length=100" in caplog.text
    with pytest.raises(RLDataSourceError, match="all 1 prompts exceed"):
        filter_overlong_prompts(rows[2:], lambda r: r[0], lambda r: r[1], budget, "train.parquet")
