"""The pretraining corpus stays generic, pretraining runs and resumes exactly, and the carried
base loads and matches its manifest."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from deepeyes import wire
from deepeyes.data.synth.drawing import PALETTE
from deepeyes.data.synth.tasks import counting, no_tool
from deepeyes.data.synth.world import CODAS, ONSETS, VOWELS
from deepeyes.models import pretrain_corpus
from deepeyes.models.base import BaseModelError, install, verify
from deepeyes.paths import CARRIED_BASE_DIR
from deepeyes.models.pretrain import IGNORE_INDEX, WARMUP_FAMILY, ConversationEncoder, PretrainArguments, train
from deepeyes.models.tiny import TinyModelSpec, build_processor

CORPUS_SIZE = 3000


@pytest.fixture(scope="module")
def corpus() -> list[pretrain_corpus.CorpusSample]:
    rng = random.Random(123)
    return [pretrain_corpus.sample(rng, image_share=0.5) for _ in range(CORPUS_SIZE)]


@pytest.fixture(scope="module")
def encoder() -> ConversationEncoder:
    return ConversationEncoder(build_processor(TinyModelSpec()))


@pytest.fixture(scope="module")
def assistant_tokens(corpus, encoder) -> list[list[int]]:
    """Each conversation's assistant-target token ids, encoded once for the tests that need them."""
    replies = []
    for sample in corpus:
        encoded = encoder.encode(sample.messages, random.Random(0))
        replies.append([token for token, reply in zip(encoded.input_ids, encoded.assistant) if reply])
    return replies


#: Words that are evaluation values: the no-tool answers, the counting colours and shapes.
EVALUATION_WORDS = set(no_tool.WORDS) | set(PALETTE) | set(counting.KINDS)


def _text(sample: pretrain_corpus.CorpusSample) -> str:
    return "\n".join(m["content"] for m in sample.messages)


def test_every_family_is_drawn(corpus) -> None:
    assert {s.family for s in corpus} == set(pretrain_corpus.FAMILIES)


def test_corpus_has_no_wire_tag(corpus) -> None:
    tags = [wire.THINK_OPEN, wire.THINK_CLOSE, wire.CODE_OPEN, wire.CODE_CLOSE, wire.ANSWER_OPEN, wire.ANSWER_CLOSE]
    tags += [wire.TOOL_CALL_OPEN, wire.TOOL_CALL_CLOSE, wire.TOOL_RESPONSE_OPEN, wire.TOOL_RESPONSE_CLOSE, "```"]
    for sample in corpus:
        text = _text(sample)
        assert not [tag for tag in tags if tag in text], text


def test_corpus_vocabulary_is_disjoint_from_the_evaluation_values(corpus) -> None:
    assert not EVALUATION_WORDS & (set(pretrain_corpus.WORDS) | set(pretrain_corpus.COMMON_WORDS))
    # made-up names and coined words hold a letter the synthetic world's names (entities,
    # people, cities, landmarks) never contain, so no corpus name can be a world value
    world_letters = set("".join(ONSETS + VOWELS + CODAS))
    assert set(pretrain_corpus.MARK_LETTERS) and not set(pretrain_corpus.MARK_LETTERS) & world_letters
    makers = [pretrain_corpus.ValueMaker(random.Random(seed)) for seed in range(2000)]
    made = [maker.name().lower() for maker in makers] + [maker.coined() for maker in makers]
    assert all(set(value) & set(pretrain_corpus.MARK_LETTERS) for value in made)
    assert not EVALUATION_WORDS & set(made)


def test_the_corpus_writes_every_piece_of_the_evaluation_names_and_numbers(assistant_tokens, encoder, sample_dir: Path) -> None:
    """A token the base never writes is one it cannot copy (its output row is only pushed
    down): every token of the held-out search answers and numbers is an assistant target
    somewhere in the corpus, though none of those values is in it. Landmark kinds (``Spire``)
    and evaluation words that are single tokens are the world's own words and stay out."""
    written = {token for reply in assistant_tokens for token in reply}
    answers = []
    for tsv in sorted((sample_dir / "eval").glob("*.tsv")):
        frame = pd.read_csv(tsv, sep="\t", dtype=str)
        answers += list(frame.loc[frame["category"].isin(["arithmetic", "text_search", "image_search"]), "answer"])
    assert len(answers) >= 30
    landmark_kinds = {"Spire", "Obelisk", "Arch", "Dome", "Gate", "Tower", "Pagoda", "Citadel", "Clocktower"}
    missing = {}
    for answer in answers:
        name = " ".join(word for word in answer.split() if word not in landmark_kinds)
        ids = encoder.tokenizer(name, add_special_tokens=False)["input_ids"]
        unwritten = [encoder.tokenizer.decode([token]) for token in ids if token not in written]
        if unwritten:
            missing[answer] = unwritten
    assert len(missing) <= len(answers) // 20, missing


def test_the_corpus_writes_the_words_questions_are_asked_in(assistant_tokens, encoder, sample_dir: Path) -> None:
    """A question word the base has never read reaches SFT as a random embedding, and the SFT
    model ignores it (``*`` for "plus", the founder searched for when the city is asked): every
    lowercase word of the evaluation questions that is not itself an evaluation value is written
    whole (its token sequence, leading space included) in some assistant reply. Pieces alone are
    not enough: coined names write `` c``, ``u``, ``r`` … without ever writing " curator"."""
    written = "".join("," + ",".join(map(str, reply)) + "," for reply in assistant_tokens)
    evaluation_words = EVALUATION_WORDS | {f"{kind}s" for kind in counting.KINDS}
    question_words = set()
    for tsv in sorted((sample_dir / "eval").glob("*.tsv")):
        for question in pd.read_csv(tsv, sep="\t", dtype=str)["question"]:
            question_words |= {word for word in re.findall(r"\b[a-z]+\b", question) if word not in evaluation_words}
    assert {"plus", "times", "minus", "city", "year", "landmark", "called"} <= question_words
    unwritten = []
    for word in sorted(question_words):
        tokens = encoder.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        if "," + ",".join(str(token) for token in tokens) + "," not in written:
            unwritten.append(word)
    assert not unwritten, unwritten


def test_corpus_poses_no_evaluation_question(corpus, sample_dir: Path) -> None:
    questions = set()
    for tsv in sorted((sample_dir / "eval").glob("*.tsv")):
        questions |= set(pd.read_csv(tsv, sep="\t")["question"])
    assert questions
    text = "\n".join(_text(s) for s in corpus)
    assert not [q for q in questions if q in text]
    # single words of the questions are everyday English the base should know; the
    # question templates they are put together in are not
    template_fragments = ("How many", "Count the", "In which city is", "In which year was", "Who was the", "Options:", "in quotes")
    template_fragments += ("landmark in this picture", "landmark shown", "this building", "What is the name of")
    assert not [fragment for fragment in template_fragments if fragment in text]
    assert not re.search(r"What is -?\d+ (plus|times|minus)", text)


@pytest.mark.parametrize("image_share", [0.0, 1.0])
def test_rendering_is_the_chat_template_and_labels_skip_only_vision_tokens(encoder, image_share) -> None:
    rng = random.Random(7)
    for _ in range(20):
        sample = pretrain_corpus.sample(rng, image_share)
        template_messages = [
            {"role": m["role"], "content": [{"type": "image"}, {"type": "text", "text": m["content"][len(pretrain_corpus.IMAGE) :]}]}
            if m["content"].startswith(pretrain_corpus.IMAGE)
            else m
            for m in sample.messages
        ]
        expected = encoder.processor.apply_chat_template(template_messages, tokenize=False)
        assert encoder.render_text(sample.messages) == expected
        encoded = encoder.encode(sample.messages, random.Random(0))
        replies = encoder.tokenizer.decode([t for t, reply in zip(encoded.input_ids, encoded.assistant) if reply])
        assert replies == "".join(m["content"] + wire.IM_END for m in sample.messages if m["role"] == "assistant")
        trained = [t for t, label in zip(encoded.input_ids, encoded.labels) if label != IGNORE_INDEX]
        assert trained == [t for t in encoded.input_ids if t not in encoder.vision_ids]
        assert (encoded.image is not None) == (image_share == 1.0)


def test_the_copy_warmup_writes_back_digit_runs() -> None:
    rng = random.Random(7)
    for _ in range(200):
        sample = pretrain_corpus.sample(rng, image_share=0.5, family=WARMUP_FAMILY)
        *_, user, reply = sample.messages
        assert (user["role"], reply["role"], sample.family) == ("user", "assistant", WARMUP_FAMILY)
        assert user["content"].endswith(f"Copy: {reply['content']}")
        assert all(value.removeprefix("-").isdigit() for value in reply["content"].split(" "))
    with pytest.raises(KeyError, match="unknown pretraining family"):
        pretrain_corpus.sample(rng, image_share=0.5, family="counting")


def test_copy_warmup_steps_must_leave_mixture_steps() -> None:
    with pytest.raises(ValueError, match="copy_warmup_steps"):
        PretrainArguments(steps=10, copy_warmup_steps=10)


def _run(out: Path, steps: int, resume: bool = True) -> dict[str, torch.Tensor]:
    args = PretrainArguments(
        out=out, steps=steps, batch_size=2, warmup_steps=1, copy_warmup_steps=1, eval_steps=2, eval_samples=2, save_steps=1, threads=1,
        resume=resume,
    )
    final = train(args, ["--steps", str(steps)])
    return load_file(final / "model.safetensors")


def test_pretraining_learns_saves_and_resumes_to_the_same_weights(tmp_path: Path) -> None:
    straight = _run(tmp_path / "straight", steps=3)
    _run(tmp_path / "resumed", steps=2)
    resumed = _run(tmp_path / "resumed", steps=3)
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    final = tmp_path / "straight" / "model"
    manifest = json.loads((final / "manifest.json").read_text())
    assert manifest["steps"] == 3 and manifest["tokens_seen"] > 0
    assert (final / "loss_curve.png").stat().st_size > 0
    assert verify(final)["seed"] == 0
    history = json.loads((final / "pretrain_history.json").read_text())
    assert len(history["loss"]) == 3 and history["eval"][-1]["step"] == 3


def test_continued_pretraining_starts_from_the_parent_and_records_the_chain(tmp_path: Path) -> None:
    parent = train(PretrainArguments(out=tmp_path / "parent", steps=2, batch_size=2, warmup_steps=1, eval_steps=2, eval_samples=2, threads=1), ["--steps", "2"])
    child_args = PretrainArguments(
        out=tmp_path / "child", steps=1, batch_size=2, warmup_steps=1, eval_steps=1, eval_samples=2, threads=1, init_from=parent,
        learning_rate=1e-9,
    )
    child = train(child_args, ["--init_from", str(parent), "--steps", "1"])
    before, after = load_file(parent / "model.safetensors"), load_file(child / "model.safetensors")
    # one step at a negligible learning rate: the child's weights are the parent's, not a fresh init
    assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)
    manifest = verify(child)
    assert manifest["parent"] == json.loads((parent / "manifest.json").read_text())
    assert manifest["total_steps"] == 3 and manifest["total_tokens_seen"] > manifest["tokens_seen"]
    assert "--init_from" in manifest["command"]
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        train(PretrainArguments(out=tmp_path / "orphan", steps=1, batch_size=2, init_from=tmp_path / "absent"), [])


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-step pretraining run's model folder, in the layout the repository carries."""
    out = tmp_path_factory.mktemp("pretrain")
    args = PretrainArguments(out=out, steps=2, batch_size=2, warmup_steps=1, eval_steps=2, eval_samples=2, save_steps=2, threads=1)
    return train(args, ["--steps", "2"])


def test_a_pretrained_folder_loads_through_the_standard_classes(pretrained: Path) -> None:
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    manifest = verify(pretrained)
    assert manifest["command"].startswith("python -m deepeyes.models.pretrain")
    assert (pretrained / "model.safetensors").stat().st_size <= 32 * 1024 * 1024  # the carried-size limit
    processor = AutoProcessor.from_pretrained(pretrained)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(pretrained)
    prompt = processor.apply_chat_template([{"role": "user", "content": "Copy: walnut 4821"}], add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[prompt], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_install_copies_a_verified_base_and_refuses_a_changed_one(pretrained: Path, tmp_path: Path) -> None:
    source = tmp_path / "carried"
    shutil.copytree(pretrained, source)
    installed = install(source, tmp_path / "installed")
    assert verify(installed) == verify(source)
    assert install(source, installed) == installed  # a second install with nothing changed keeps it
    weights = source / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BaseModelError, match="model.safetensors: sha256"):
        install(source, tmp_path / "other")
    (source / "manifest.json").unlink()
    with pytest.raises(BaseModelError, match="no manifest"):
        verify(source)


def test_a_checkout_without_a_carried_base_is_reported_not_failed(tmp_path: Path, capsys) -> None:
    from deepeyes.models.base import main

    assert main(["--source", str(tmp_path / "absent"), "--target", str(tmp_path / "target")]) == 0
    assert "no pretrained base carried" in capsys.readouterr().out
    assert not (tmp_path / "target").exists()


def test_the_carried_base_matches_its_manifest_and_copies_digit_runs_it_never_saw() -> None:
    """The base the repository carries is what its manifest says and has learnt to copy: greedy
    decoding writes back digit runs drawn from a generator its training never used."""
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    manifest = verify(CARRIED_BASE_DIR)
    assert manifest["command"].startswith("python -m deepeyes.models.pretrain")
    assert (CARRIED_BASE_DIR / "model.safetensors").stat().st_size <= 32 * 1024 * 1024
    processor = AutoProcessor.from_pretrained(CARRIED_BASE_DIR)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(CARRIED_BASE_DIR).eval()
    rng = random.Random(20261207)
    copied = 0
    trials = 8
    # unsigned runs: signs entered the corpus only in its last 2,000 steps, and the digits
    # after a minus sign are still copied worse (docs/pretrain.md)
    samples = (pretrain_corpus.sample(rng, image_share=0.0, family=WARMUP_FAMILY).messages for _ in range(1000))
    unsigned = [messages for messages in samples if "-" not in messages[-1]["content"]][:trials]
    for *prompt, reply in unsigned:
        text = processor.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        inputs = processor(text=[text], return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=48, do_sample=False)
        generated = processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        copied += generated.strip() == reply["content"]
    assert copied >= trials * 3 // 4, f"copied {copied} of {trials}"
