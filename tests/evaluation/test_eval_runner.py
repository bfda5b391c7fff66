"""The runner: outputs, resume, retry of failed samples, no-tool mode, settings guard, CLIs."""

from __future__ import annotations

import json
import threading

import pytest

from deepeyes import wire
from deepeyes.evaluation import runner
from deepeyes.evaluation.__main__ import main as eval_main
from deepeyes.evaluation.compare import comparison_table
from deepeyes.evaluation.compare import main as compare_main
from deepeyes.evaluation.config import EvalConfig
from deepeyes.evaluation.report import dataset_figure
from deepeyes.evaluation.runner import ResumeMismatchError, evaluate
from deepeyes.policies.base import Generation

ROWS_A = [{"index": i, "question": f"What number is shown in picture {i}?", "answer": str(i), "category": "even" if i % 2 == 0 else "odd"} for i in range(5)]
ROWS_B = [{"index": i, "question": f"Pick option for {i}", "answer": "A", "category": "mc", "A": "yes", "B": "no"} for i in range(3)]


class CountingPolicy:
    """Answers every question with the number in it (so it is right), counting calls per question."""

    def __init__(self, fail_on: str | None = None, first_turn: str | None = None):
        self.calls: dict[str, int] = {}
        self.fail_on = fail_on
        self.first_turn = first_turn
        self._lock = threading.Lock()

    def generate(self, messages, sampling=None) -> Generation:
        question = messages[1].content
        with self._lock:
            self.calls[question] = self.calls.get(question, 0) + 1
        if self.fail_on and self.fail_on in question:
            raise RuntimeError("endpoint down")
        if self.first_turn is not None:
            return Generation(self.first_turn)
        digits = [word.rstrip("?") for word in question.split() if word.rstrip("?").isdigit()]
        return Generation(f"<answer>{digits[0] if 'number' in question else 'A'}</answer>")

    @property
    def total(self) -> int:
        return sum(self.calls.values())


@pytest.fixture()
def lmudata(make_tsv):
    make_tsv("SetA", ROWS_A)
    return make_tsv("SetB", ROWS_B).parent


def _config(lmudata, tmp_path, **overrides) -> EvalConfig:
    settings = {
        "datasets": ["SetA", "SetB"],
        "lmudata": str(lmudata),
        "output_dir": str(tmp_path / "out"),
        "use_tools": False,
        "show_progress": False,
        "report": False,  # drawn and checked once, in test_writes_every_output
    }
    return EvalConfig(**{**settings, **overrides})


def test_writes_every_output(lmudata, tmp_path):
    results = evaluate(_config(lmudata, tmp_path, report=True), policy=CountingPolicy())
    out = tmp_path / "out"
    assert results["overall"]["n"] == 8 and results["overall"]["accuracy"] == 1.0
    assert set(results["datasets"]["SetA"]["categories"]) == {"even", "odd"}
    assert json.loads((out / "eval_results.json").read_text())["overall"]["n"] == 8
    for name, count in (("SetA", 5), ("SetB", 3)):
        lines = (out / "trajectories" / f"{name}.jsonl").read_text().splitlines()
        assert len(lines) == count
        record = next(r for r in map(json.loads, lines) if r["metadata"]["index"] == "0")
        assert record["data_source"] == name and record["reward"]["accuracy"] == 1.0 and record["images"] == [f"{name}.tsv#index=0"]
    pdf = (out / "eval_report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") + pdf.count(b"/Type /Page>") >= 3
    html = (out / "eval_report.html").read_text()
    # summary + per dataset a category table, a baseline table and one plot
    assert html.count("<table>") == 5 and html.count("data:image/png;base64,") == 2
    assert "95% CI" in html and "always first option" in html
    # SetB's gold answer is A on all 3 rows: answering A everywhere does as well as the model, and the report says so
    flag = "SetB: always-first-option reaches 100.0 % on 3 multiple-choice rows, the model 100.0 %"
    assert flag in results["flags"] and f"FLAG: {flag}" in html
    assert results["datasets"]["SetB"]["data_guards"]["gold_letters"] == {"2": {"A": 3}}  # too few rows to judge a letter bias
    records = [json.loads(line) for line in (out / "trajectories" / "SetA.jsonl").read_text().splitlines()]
    page = dataset_figure("SetA", results["datasets"]["SetA"], records, with_table=True)
    table, baselines = [artist for ax in page.axes for artist in ax.tables]
    assert table.get_celld()[(0, 0)].get_text().get_text() == "category" and len({row for row, _ in table.get_celld()}) == 4  # header, all, even, odd
    assert baselines.get_celld()[(0, 0)].get_text().get_text() == "baseline" and len({row for row, _ in baselines.get_celld()}) == 4
    assert sum(len(ax.patches) for ax in page.axes) > 0  # bars and histogram drawn


def test_resume_skips_finished_samples(lmudata, tmp_path):
    first = CountingPolicy()
    evaluate(_config(lmudata, tmp_path, max_samples=2), policy=first)
    assert first.total == 4  # 2 per dataset

    second = CountingPolicy()
    results = evaluate(_config(lmudata, tmp_path), policy=second)
    assert second.total == 4  # only the 3 + 1 samples not run before
    assert results["datasets"]["SetA"]["resumed"] == 2 and results["overall"]["n"] == 8

    third = CountingPolicy()
    evaluate(_config(lmudata, tmp_path), policy=third)
    assert third.total == 0
    assert len((tmp_path / "out" / "trajectories" / "SetA.jsonl").read_text().splitlines()) == 5


def test_half_written_line_is_rerun(lmudata, tmp_path):
    evaluate(_config(lmudata, tmp_path, datasets=["SetA"]), policy=CountingPolicy())
    path = tmp_path / "out" / "trajectories" / "SetA.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])  # killed mid-write
    again = CountingPolicy()
    results = evaluate(_config(lmudata, tmp_path, datasets=["SetA"]), policy=again)
    assert again.total == 1 and results["overall"]["n"] == 5
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_failed_samples_count_and_are_retried(lmudata, tmp_path):
    results = evaluate(_config(lmudata, tmp_path, datasets=["SetA"]), policy=CountingPolicy(fail_on="picture 3"))
    overall = results["overall"]
    assert (overall["errors"], overall["accuracy"], overall["task_completion"]) == (1, 0.8, 0.8)
    retry = CountingPolicy()
    results = evaluate(_config(lmudata, tmp_path, datasets=["SetA"]), policy=retry)
    assert list(retry.calls) == ["<image>\nWhat number is shown in picture 3?\nAnswer with a single word, a number or a short phrase."]
    assert (results["overall"]["errors"], results["overall"]["accuracy"]) == (0, 1.0)


def test_no_tools_mode_makes_no_tool_calls(lmudata, tmp_path, monkeypatch):
    def no_tool_manager(_config):
        raise AssertionError("USE_TOOLS=False must not build a tool manager")

    monkeypatch.setattr(runner, "build_tool_manager", no_tool_manager)
    policy = CountingPolicy(first_turn=wire.think("try code") + wire.code_action("print(1)"))
    results = evaluate(_config(lmudata, tmp_path), policy=policy)
    assert policy.total == 8  # exactly one turn per sample
    records = [json.loads(line) for name in ("SetA", "SetB") for line in (tmp_path / "out" / "trajectories" / f"{name}.jsonl").read_text().splitlines()]
    assert all(len(r["turns"]) == 1 and r["turns"][0]["observation"] is None for r in records)
    assert all(sum(r["tool_calls"][k] for k in ("code", "search", "image_search")) == 0 for r in records)
    assert results["overall"]["any_tool_call_rate"] == 0.0 and results["overall"]["tool_calls_attempted"] == 0


def test_resume_refuses_other_settings(lmudata, tmp_path):
    evaluate(_config(lmudata, tmp_path, datasets=["SetB"]), policy=CountingPolicy())
    with pytest.raises(ResumeMismatchError, match="max_turns"):
        evaluate(_config(lmudata, tmp_path, datasets=["SetB"], max_turns=2), policy=CountingPolicy())
    fresh = CountingPolicy()
    evaluate(_config(lmudata, tmp_path, datasets=["SetB"], max_turns=2, overwrite=True), policy=fresh)
    assert fresh.total == 3


def test_compare_table_and_cli(lmudata, tmp_path, capsys):
    evaluate(_config(lmudata, tmp_path, output_dir=str(tmp_path / "good")), policy=CountingPolicy())
    evaluate(_config(lmudata, tmp_path, output_dir=str(tmp_path / "bad")), policy=CountingPolicy(first_turn="no idea"))
    table = comparison_table({"good": tmp_path / "good", "bad": tmp_path / "bad"})
    lines = table.splitlines()
    header, _, good, bad = lines[:4]
    assert header.split() == ["run", "n", "accuracy", "95%", "CI", "circular", "valid", "actions", "tool-call", "rate"]
    # Wilson on 8 of 8: [z²/(n+z²)·…] = [0.6756, 1]; on 0 of 8: [0, 3.8415/11.8415] = [0, 0.3244].
    assert good.split() == ["good", "8", "100.0%", "[67.6,", "100.0]", "–", "100.0%", "0.0%"]
    assert bad.split() == ["bad", "8", "0.0%", "[0.0,", "32.4]", "–", "0.0%", "0.0%"]
    # bad vs good on the same 8 samples: −100 points every resample; McNemar 8 discordant pairs one way: p = 2 · 0.5⁸.
    paired = next(line for line in lines if line.startswith("bad vs good"))
    assert paired.split() == ["bad", "vs", "good", "8", "100.0%", "0.0%", "-100.0", "pts", "[-100.0,", "-100.0]", "8", "0", "0.00781", "bad", "worse"]
    assert any(line.startswith("  SetA") and line.split()[1] == "5" for line in lines)  # per dataset when there are several
    assert f"good: {tmp_path / 'good' / 'eval_report.pdf'}" in table
    assert compare_main(["--runs", f"good={tmp_path / 'good'}"]) == 0
    assert compare_main(["--runs", f"none={tmp_path / 'missing'}"]) == 2
    assert "no eval_results.json" in capsys.readouterr().err


def test_eval_cli_reports_bad_tsv(make_tsv, tmp_path, capsys):
    path = make_tsv("Broken", [{"index": 0, "question": "q"}])
    code = eval_main(["--datasets", "Broken", "--lmudata", str(path.parent), "--output", str(tmp_path / "o"), "--no_progress"])
    assert code == 2 and "missing required column(s) ['answer']" in capsys.readouterr().err
