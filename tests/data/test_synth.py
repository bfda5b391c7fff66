"""The synthetic sample data: deterministic, well-formed, and its trajectories are real.

One small dataset is generated per session (sizes via the config) and shared by the
checks; a second generation with the same seed checks byte-identical output.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
from pathlib import Path

import pytest
from PIL import Image

from deepeyes import prompts, wire
from deepeyes.data import formats
from deepeyes.data.synth import SynthConfig, generate
from deepeyes.data.synth.__main__ import main as cli_main
from deepeyes.data.synth.config import ALL_TASKS, VISUAL_TASKS
from deepeyes.data.synth.executor import execute_code
from deepeyes.data.synth.pipeline import build_samples, plan, quotas
from deepeyes.data.synth.recording import record_seed
from deepeyes.data.synth.sample import SynthError
from deepeyes.data.synth.tasks import BUILDERS, TaskContext
from deepeyes.data.synth.text_search_hook import CorpusSearch
from deepeyes.data.synth.world import build_world

SMALL = {"sft": 14, "rl_train": 14, "rl_val": 7, "eval_visual": 10, "eval_search": 6, "distractor_entities": 20}


def _small_config(out: Path, seed: int = 0) -> SynthConfig:
    return SynthConfig(out=out, seed=seed, **SMALL)


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "sample"
    generate(_small_config(out), show_progress=False)
    return out


@pytest.fixture(scope="module")
def seeds(sample_dir: Path) -> list[dict]:
    return formats.read_jsonl(sample_dir / "sft/seed.jsonl")


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(sample_dir: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate(_small_config(again), show_progress=False)
    first, second = _all_files(sample_dir), _all_files(again)
    assert sorted(first) == sorted(second)
    differing = [name for name in first if first[name] != second[name]]
    assert differing == []


def test_manifest_lists_every_file_with_its_hash_and_the_counts(sample_dir: Path) -> None:
    import hashlib

    manifest = formats.read_json(sample_dir / "manifest.json")
    on_disk = {name: hashlib.sha256(data).hexdigest() for name, data in _all_files(sample_dir).items() if name != "manifest.json"}
    assert manifest["files"] == on_disk
    assert manifest["seed"] == 0 and manifest["generator"] == "deepeyes.data.synth"
    assert {split: sum(c.values()) for split, c in manifest["counts"].items()} == {
        "sft": 14,
        "rl_train": 14,
        "rl_val": 7,
        "eval_visual": 10,
        "eval_search": 6,
    }


def test_regenerating_into_the_same_folder_leaves_no_stale_files(tmp_path: Path) -> None:
    out = tmp_path / "sample"
    sizes = {"sft": 0, "rl_val": 1, "eval_visual": 2, "eval_search": 2, "distractor_entities": 5}
    generate(SynthConfig(out=out, seed=3, rl_train=6, **sizes), show_progress=False)
    (out / "notes.txt").write_text("kept: not the generator's file")
    generate(SynthConfig(out=out, seed=3, rl_train=2, **sizes), show_progress=False)
    manifest = formats.read_json(out / "manifest.json")
    assert sorted(manifest["files"]) == sorted(n for n in _all_files(out) if n not in ("manifest.json", "notes.txt"))
    assert len(formats.read_parquet(out / "rl/train.parquet")) == 2
    assert not list((out / "images").glob("rl_train-00005*"))
    assert formats.read_jsonl(out / "sft/seed.jsonl") == [] and formats.read_json(out / "sft/sharegpt.json") == []
    assert (out / "notes.txt").exists()


def test_a_different_seed_gives_different_samples(tmp_path: Path) -> None:
    def questions_and_pixels(seed: int) -> list[tuple[str, bytes]]:
        config = _small_config(tmp_path, seed)
        samples, _ = build_samples(config, plan(config))
        return [(s.question, s.image.tobytes()) for s in samples.values()]

    assert questions_and_pixels(0) == questions_and_pixels(0)
    assert questions_and_pixels(0) != questions_and_pixels(1)


def test_every_sft_code_block_reproduces_its_recorded_output_in_a_fresh_process(sample_dir: Path, seeds: list[dict]) -> None:
    blocks = [(s, c) for s in seeds for c in s["tool_calls"] if c["tool"] == "code_execution"]
    assert len(blocks) >= 5  # counting + arithmetic: two of the five curriculum tasks
    for seed, call in blocks:
        result = execute_code(call["input"], sample_dir / seed["image"])
        assert result.returncode == 0 and result.stderr == "", (seed["id"], result.stderr)
        assert result.stdout == call["output"], seed["id"]
        assert result.images == [(sample_dir / p).read_bytes() for p in call["images"]], seed["id"]


def _value(seed: dict) -> str:
    """The answer's value: the chosen option's text for a multiple-choice record."""
    options = dict(re.findall(r"^([A-D])\. (.+)$", seed["text"], flags=re.MULTILINE))
    return options[seed["answer"]] if options else seed["answer"]


def test_code_results_carry_the_ground_truth(seeds: list[dict]) -> None:
    for seed in seeds:
        if seed["task"] in ("counting", "chart", "arithmetic"):
            (call,) = seed["tool_calls"]
            last_line = call["output"].strip().splitlines()[-1]
            assert last_line.split()[-1] == _value(seed), seed["id"]
        if seed["task"] == "small_text":
            assert len(seed["tool_calls"][0]["images"]) == 1  # the zoomed crop is shown back
        assert _value(seed) in seed["thoughts"][-1]


def test_sft_rl_and_evaluation_pose_a_question_with_the_same_text(sample_dir: Path, seeds: list[dict]) -> None:
    """A tiny model does not transfer to an instruction line it never saw: SFT and RL ask the
    question exactly as the evaluation runner builds it from the TSV row."""
    from deepeyes.evaluation.datasets import load_dataset
    from deepeyes.evaluation.templates import INSTRUCTIONS, build_question

    posed_in_eval = {
        build_question(sample)
        for name in ("DeepEyesMini_Visual", "DeepEyesMini_Search")
        for sample in load_dataset(name, sample_dir / "eval")
    }
    rl_questions = [row["extra_info"]["question"] for row in formats.read_parquet(sample_dir / "rl/val.parquet")]
    for text in [seed["text"] for seed in seeds] + rl_questions + sorted(posed_in_eval):
        assert text.splitlines()[-1] in (INSTRUCTIONS["auto"], INSTRUCTIONS["choice"]), text
    choice_records = [seed for seed in seeds if "Options:" in seed["text"]]
    assert choice_records, "some SFT records must be multiple choice, as some evaluation rows are"
    for seed in choice_records:
        assert seed["text"].endswith(INSTRUCTIONS["choice"]) and seed["answer"] in "ABCD"
        assert seed["thoughts"][-1].endswith(f"That is option {seed['answer']}.")
    for seed in seeds:
        if seed["task"] in ("text_search", "image_search"):
            assert "Options:" not in seed["text"]


def test_image_search_ranks_the_page_with_the_same_picture_first(seeds: list[dict], sample_dir: Path) -> None:
    cache = formats.read_json(sample_dir / "image_search/cache.json")
    for q in formats.read_jsonl(sample_dir / "image_search/queries.jsonl"):
        assert cache[q["index"]]["tool_returned_web_title"][0] == q["gold_title"]
    for seed in seeds:
        if seed["task"] == "image_search":
            assert seed["thoughts"][-1].startswith("The top result shows the same building")


def test_a_code_step_whose_output_contradicts_the_ground_truth_is_rejected(tmp_path: Path) -> None:
    sample = BUILDERS["counting"](random.Random(5), TaskContext())
    sample.steps[0].expected_stdout = "red shapes: 99\n"
    (tmp_path / "images").mkdir()
    formats.save_png(sample.image, tmp_path / "images/x.png")
    with pytest.raises(SynthError, match="ground truth"):
        record_seed("x", sample, tmp_path, "images/x.png", search=None, thumbnail_rels=[])  # type: ignore[arg-type]


def test_every_task_and_a_no_tool_share_appear_in_sft(seeds: list[dict]) -> None:
    assert {s["task"] for s in seeds} == set(SynthConfig().training_mixture)
    for seed in seeds:
        assert len(seed["thoughts"]) == len(seed["tool_calls"]) + 1
        assert (seed["task"] == "no_tool") == (seed["tool_calls"] == [])
    default = quotas(SynthConfig().sft, SynthConfig().mixture("sft"))
    assert sum(default.values()) == SynthConfig().sft and default["no_tool"] == SynthConfig().sft // 5  # a fifth needs no tool


def test_sharegpt_records_follow_the_wire_format(sample_dir: Path, seeds: list[dict]) -> None:
    records = formats.read_json(sample_dir / "sft/sharegpt.json")
    assert len(records) == len(seeds)
    actions = re.compile(
        r"^<think>\n.+\n</think>\n(<code>\n```python\n.+\n```\n</code>|<tool_call>\n.+\n</tool_call>|<answer>.+</answer>)$",
        re.DOTALL,
    )
    for record, seed in zip(records, seeds):
        messages = record["messages"]
        assert messages[0] == {"role": "system", "content": prompts.system_prompt()}
        assert messages[1] == {"role": "user", "content": prompts.user_prompt(seed["text"])}
        roles = [m["role"] for m in messages[2:]]
        assert roles == ["assistant", "user"] * len(seed["tool_calls"]) + ["assistant"]
        for message in messages[2:]:
            if message["role"] == "assistant":
                assert actions.match(message["content"]), message["content"]
                assert sum(message["content"].count(tag) for tag in ("<code>", "<tool_call>", "<answer>")) == 1
        assert messages[-1]["content"].endswith(wire.answer_action(seed["answer"]))
        placeholders = sum(m["content"].count(wire.IMAGE_PLACEHOLDER) for m in messages if m["role"] == "user")
        assert placeholders == len(record["images"])
        assert record["images"][0] == seed["image"]


def test_sft_text_search_observations_are_what_the_search_tool_returns(sample_dir: Path, seeds: list[dict]) -> None:
    calls = [c for s in seeds for c in s["tool_calls"] if c["tool"] == "text_search"]
    assert calls
    with CorpusSearch(sample_dir / "search/corpus.jsonl") as search:
        for call in calls:
            assert wire.tool_response(call["output"]) == search.search(call["input"]).text


def test_search_answers_are_read_from_a_quote_that_ends_with_them(seeds: list[dict]) -> None:
    """The last thought of a search sample quotes the gold text up to the answer: verbatim, from
    a start no other result shares (text search), and with the answer as its last words, so the
    answer the model writes is a copy of the words it has just written."""
    searched = [s for s in seeds if s["task"] in ("text_search", "image_search")]
    assert {s["task"] for s in searched} == {"text_search", "image_search"}
    for seed in searched:
        output = seed["tool_calls"][-1]["output"]
        if seed["task"] == "text_search":
            quote = re.search(r"It says: (.*)\. So the answer is (.*)\.$", seed["thoughts"][-1], re.S)
            assert quote and quote.group(2) == seed["answer"], seed["thoughts"][-1]
            assert output.count(quote.group(1)) == 1  # in one result only, verbatim
            # from the entity's name (asked in the question) or from its measure's sentence
            opening = quote.group(1).split(" is ")[0]
            assert opening in seed["text"] or (opening.startswith("The ") and opening.split(" of ")[-1] in seed["text"])
        else:
            quote = re.search(r"its title reads '(.*)'\. So the (city|name) is (.*)\.$", seed["thoughts"][-1], re.S)
            assert quote and quote.group(3) == seed["answer"], seed["thoughts"][-1]
            assert ("city" in seed["text"]) == (quote.group(2) == "city")
            # what is asked is said first, before the search, in the model's own words
            assert f"The question asks for the {quote.group(2)} " in seed["thoughts"][0]
            assert output.split("\n")[0].startswith("1. <image> ") and quote.group(1) in output.split("\n")[0]
        assert quote.group(1).endswith(seed["answer"])


def test_every_referenced_image_exists(sample_dir: Path, seeds: list[dict]) -> None:
    referenced = [s["image"] for s in seeds] + [p for s in seeds for c in s["tool_calls"] for p in c.get("images", [])]
    referenced += [p for r in formats.read_json(sample_dir / "sft/sharegpt.json") for p in r["images"]]
    for name in ("train", "val"):
        referenced += [i["image"] for row in formats.read_parquet(sample_dir / f"rl/{name}.parquet") for i in row["images"]]
    referenced += [q["image_path"] for q in formats.read_jsonl(sample_dir / "image_search/queries.jsonl")]
    cache = formats.read_json(sample_dir / "image_search/cache.json")
    referenced += ["image_search/" + p for entry in cache.values() for p in entry["cached_images_path"]]
    assert len(referenced) > 50
    for rel in referenced:
        assert not Path(rel).is_absolute()
        with Image.open(sample_dir / rel) as image:
            assert image.format == "PNG"


def test_rl_rows_follow_verl_conventions_with_ground_truth(sample_dir: Path) -> None:
    for name, size in (("train", 14), ("val", 7)):
        rows = formats.read_parquet(sample_dir / f"rl/{name}.parquet")
        assert len(rows) == size
        for row in rows:
            assert row["data_source"] == "deepeyes_synth" and row["env_name"] and row["ability"]
            system, user = row["prompt"]
            assert system["role"] == "system" and system["content"] == prompts.system_prompt()
            assert user["role"] == "user" and user["content"] == prompts.user_prompt(row["extra_info"]["question"])
            assert row["reward_model"]["style"] == "rule"
            assert row["reward_model"]["ground_truth"] == row["extra_info"]["answer"] != ""
            assert row["extra_info"]["split"] == name and row["extra_info"]["task"] in ALL_TASKS


def test_eval_tsvs_follow_vlmevalkit_conventions(sample_dir: Path) -> None:
    cache = formats.read_json(sample_dir / "image_search/cache.json")
    visual = formats.read_tsv(sample_dir / "eval/DeepEyesMini_Visual.tsv")
    search = formats.read_tsv(sample_dir / "eval/DeepEyesMini_Search.tsv")
    assert (len(visual), len(search)) == (10, 6)
    assert set(visual["category"]) <= set(VISUAL_TASKS) and set(search["category"]) == {"text_search", "image_search"}
    for table in (visual, search):
        assert list(table["index"]) == [str(i) for i in range(len(table))]
        for _, row in table.iterrows():
            assert row["question"] and row["answer"]
            assert formats.image_from_base64(row["image"]).size[0] >= 224
            if row["A"]:
                assert row["answer"] in "ABCD" and len({row[c] for c in "ABCD"}) == 4
            if row["category"] == "image_search":
                assert row["image_index"] in cache
    assert (visual["A"] != "").any(), "some Visual rows must be multiple choice"


def test_text_search_questions_cover_every_text_search_sample(sample_dir: Path) -> None:
    questions = formats.read_jsonl(sample_dir / "search/questions.jsonl")
    expected = [p.sample_id for p in plan(_small_config(sample_dir)) if p.task == "text_search"]
    assert sorted(q["id"] for q in questions) == sorted(expected)
    corpus = formats.read_jsonl(sample_dir / "search/corpus.jsonl")
    by_link = {doc["link"]: doc for doc in corpus}
    assert len(by_link) == len(corpus)
    with CorpusSearch(sample_dir / "search/corpus.jsonl") as search:
        for q in questions:
            assert q["answer"] in by_link[q["gold_link"]]["text"]
            assert by_link[q["gold_link"]]["title"] in q["query"]
            links = [r["link"] for r in search.search(q["query"]).results]
            assert q["gold_link"] in links[:3], q


def test_default_world_gives_a_corpus_of_at_least_300_documents() -> None:
    config = SynthConfig()
    text_questions = sum(
        quotas(size, config.mixture(split))["text_search"]
        for split, size in config.split_sizes().items()
        if split != "eval_visual"
    )
    world = build_world(random.Random(0), text_questions + config.distractor_entities, 10)
    assert len(world.documents) >= 300
    assert len({d.title for d in world.documents}) == len(world.documents)


def test_image_search_cache_has_the_mmsearch_shape(sample_dir: Path) -> None:
    cache = formats.read_json(sample_dir / "image_search/cache.json")
    queries = formats.read_jsonl(sample_dir / "image_search/queries.jsonl")
    assert sorted(cache) == sorted(q["index"] for q in queries)
    for q in queries:
        entry = cache[q["index"]]
        assert set(entry) == {"tool_returned_web_title", "cached_images_path"}
        assert len(entry["tool_returned_web_title"]) == len(entry["cached_images_path"]) == 5
        assert q["gold_title"] in entry["tool_returned_web_title"] and q["answer"] in q["gold_title"]
        assert sum(q["answer"] in title for title in entry["tool_returned_web_title"]) >= 1


def test_image_search_trajectory_shows_the_cache_entry(seeds: list[dict], sample_dir: Path) -> None:
    cache = formats.read_json(sample_dir / "image_search/cache.json")
    for seed in (s for s in seeds if s["task"] == "image_search"):
        (call,) = seed["tool_calls"]
        entry = cache[seed["id"]]
        assert call["output"] == wire.image_search_body(entry["tool_returned_web_title"])
        assert call["images"] == ["image_search/" + p for p in entry["cached_images_path"]]


def test_small_text_is_too_small_to_read_without_zoom(seeds: list[dict], sample_dir: Path) -> None:
    for seed in (s for s in seeds if s["task"] == "small_text"):
        with Image.open(sample_dir / seed["image"]) as image, Image.open(sample_dir / seed["tool_calls"][0]["images"][0]) as zoom:
            assert max(image.size) >= 448
            assert zoom.size[0] >= 4 * 40  # the label text fits in ~40 px before the 4x zoom


def test_cli_help_and_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        cli_main(["--help"])
    assert exited.value.code == 0
    help_text = capsys.readouterr().out
    for flag in ("--out", "--seed", "--sft", "--rl-train", "--rl-val", "--eval-visual", "--eval-search", "--workers"):
        assert flag in help_text
    with pytest.raises(SystemExit) as exited:
        cli_main(["--out", str(tmp_path), "--sft", "-1"])
    assert exited.value.code == 2
    assert "sft" in capsys.readouterr().err


def test_cli_generates_and_summarises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(
        [
            "--out",
            str(tmp_path / "s"),
            "--sft",
            "3",
            "--rl-train",
            "2",
            "--rl-val",
            "1",
            "--eval-visual",
            "2",
            "--eval-search",
            "2",
            "--distractor-entities",
            "3",
            "--quiet",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "sft" in out and "corpus" in out
    manifest = json.loads((tmp_path / "s/manifest.json").read_text())
    assert manifest["sizes"]["sft"] == 3
    assert io.BytesIO((tmp_path / "s/rl/train.parquet").read_bytes()).read(4) == b"PAR1"


def test_the_image_search_tool_serves_the_recorded_observation(sample_dir: Path, seeds: list[dict], tmp_path: Path) -> None:
    from deepeyes.search.config import ImageSearchConfig
    from deepeyes.search.image import ImageSearcher

    searcher = ImageSearcher.from_config(
        ImageSearchConfig(
            cache_json=str(sample_dir / "image_search/cache.json"),
            queries_jsonl=str(sample_dir / "image_search/queries.jsonl"),
            query_image_root=str(sample_dir),
            index_dir=str(tmp_path / "index"),
        )
    )
    for seed in (s for s in seeds if s["task"] == "image_search"):
        with Image.open(sample_dir / seed["image"]) as opened:
            image = opened.convert("RGB")
        for outcome in (searcher.search(None, sample_index=seed["id"]), searcher.search(image)):
            assert outcome.error is None and outcome.render() == wire.tool_response(seed["tool_calls"][0]["output"])
            recorded = [Image.open(sample_dir / p).convert("RGB").tobytes() for p in seed["tool_calls"][0]["images"]]
            assert [t.tobytes() for t in outcome.thumbnails] == recorded


def test_both_sft_files_pass_the_llamafactory_converter_strictly(sample_dir: Path, tmp_path: Path) -> None:
    from deepeyes.data.to_llamafactory import ConvertOptions, convert

    for name in ("seed.jsonl", "sharegpt.json"):
        result = convert(
            ConvertOptions(inputs=[sample_dir / "sft" / name], out=tmp_path / name, image_root=sample_dir, strict=True)
        )
        assert result.dataset_file is not None
        assert len(json.loads(result.dataset_file.read_text())) == SMALL["sft"]


# ---- the curriculum: tools necessary and sufficient, disjoint train / held-out values -------

EXPECTED_TOOLS = {"counting": ["code"], "arithmetic": ["code"], "text_search": ["search"], "image_search": ["image_search"], "no_tool": []}


def test_every_sample_names_the_tools_its_task_needs(sample_dir: Path, seeds: list[dict]) -> None:
    for seed in seeds:
        assert seed["required_tools"] == EXPECTED_TOOLS[seed["task"]]
    for row in formats.read_parquet(sample_dir / "rl/train.parquet"):
        info = row["extra_info"]
        assert list(info["required_tools"]) == EXPECTED_TOOLS[info["task"]]
    visual = formats.read_tsv(sample_dir / "eval/DeepEyesMini_Visual.tsv")
    for category, tools in zip(visual["category"], visual["required_tools"], strict=True):
        assert tools == ",".join(EXPECTED_TOOLS[category])


def test_arithmetic_and_no_tool_answers_follow_from_the_question_alone() -> None:
    for index in range(30):
        sample = BUILDERS["arithmetic"](random.Random(index), TaskContext())
        a, b = (int(n) for n in re.findall(r"\d+", sample.question)[:2])
        assert int(sample.answer) in {a * b, a + b * b, a * b - a}
        # the code copies the question's words whole, and running it prints the answer
        words = sample.question.removeprefix("What is ").removesuffix("?")
        assert sample.steps[0].input.startswith(f'words = "{words}"\n')
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(sample.steps[0].input, {})
        assert printed.getvalue() == f"{sample.answer}\n"
        word = BUILDERS["no_tool"](random.Random(index), TaskContext())
        assert f"'{word.answer}'" in word.question and word.steps == []


COUNTED = re.compile(r"(\w+ (?:shapes|circles|squares|triangles))")


def _defining_values(task: str, question: str, answer: str) -> tuple[str, ...]:
    """What the partition is over: the operands, the (things counted, count), the word."""
    if task == "arithmetic":
        return (question,)
    if task == "counting":
        return (COUNTED.search(question).group(1), answer)
    return (answer,)


@pytest.mark.parametrize("task", ["arithmetic", "counting", "no_tool"])
def test_heldout_values_never_appear_in_training(task: str) -> None:
    def values(heldout: bool) -> set[tuple[str, ...]]:
        built = [BUILDERS[task](random.Random(i), TaskContext(heldout=heldout)) for i in range(60)]
        return {_defining_values(task, s.question, s.answer) for s in built}

    train, heldout = values(False), values(True)
    assert len(heldout) >= 5 and len(train) >= 5
    assert not train & heldout


def test_the_first_rows_of_each_benchmark_cover_its_categories_evenly():
    """MAX_SAMPLES evaluates the first N rows: with 20 of 60 visual rows, each category gets 6 or 7."""
    from collections import Counter

    planned = plan(SynthConfig(sft=10, rl_train=5, rl_val=5))
    for split, categories in (("eval_visual", 3), ("eval_search", 2)):
        first = Counter(item.task for item in planned if item.split == split and item.index < 20)
        assert len(first) == categories and max(first.values()) - min(first.values()) <= 1, (split, first)
