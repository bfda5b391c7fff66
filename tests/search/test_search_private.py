"""The private backend: a user function named ``module:function`` in the config."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from deepeyes.search.config import SearchConfig
from deepeyes.search.text import TextSearcher

KNOWLEDGE_BASE = textwrap.dedent(
    """
    CALLS = []

    def lookup(query, top_k, collection="default"):
        CALLS.append((query, top_k, collection))
        return [
            {"title": f"{collection}: {query} #{i}", "link": f"kb://{i}", "text": "internal memo", "date": "2021-03-04"}
            for i in range(10)
        ]

    def broken(query, top_k):
        raise RuntimeError("database locked")

    def flaky(query, top_k, state={"calls": 0}):
        state["calls"] += 1
        if state["calls"] == 1:
            raise TimeoutError("slow replica")
        return [{"title": "recovered"}]

    def wrong_shape(query, top_k):
        return {"title": "not a list"}

    def untitled(query, top_k):
        return [{"link": "kb://1"}]
    """
)


@pytest.fixture()
def kb_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"private_kb_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(KNOWLEDGE_BASE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def private_searcher(function: str, **kwargs: object) -> TextSearcher:
    cfg = SearchConfig()
    cfg.text.backend = "private"
    cfg.text.private.function = function
    cfg.text.private.kwargs = dict(kwargs)
    cfg.text.retry.backoff_s = 0.0
    cfg.cache.enabled = False
    return TextSearcher.from_config(cfg)


def test_private_function_results_and_kwargs(kb_module: str) -> None:
    outcome = private_searcher(f"{kb_module}:lookup", collection="hr").search("leave policy", top_k=3)
    assert outcome.error is None
    assert outcome.results[0] == {"title": "hr: leave policy #0", "link": "kb://0", "snippet": "internal memo", "date": "2021-03-04"}
    assert len(outcome.results) == 3
    import importlib

    assert importlib.import_module(kb_module).CALLS == [("leave policy", 3, "hr")]


def test_private_function_failures_become_errors(kb_module: str) -> None:
    assert private_searcher(f"{kb_module}:broken").search("x").error == "the private search function failed: RuntimeError: database locked"
    assert "returned dict, expected a list" in private_searcher(f"{kb_module}:wrong_shape").search("x").error
    assert "without a 'title'" in private_searcher(f"{kb_module}:untitled").search("x").error


def test_private_function_timeout_is_retried(kb_module: str) -> None:
    outcome = private_searcher(f"{kb_module}:flaky").search("x")
    assert outcome.error is None and outcome.results[0]["title"] == "recovered"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon_here", "must look like 'module:function'"),
        ("json:no_such_function", "has no attribute"),
        ("json:__doc__", "is not callable"),
    ],
)
def test_bad_function_spec_fails_at_start_up(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        private_searcher(spec)
