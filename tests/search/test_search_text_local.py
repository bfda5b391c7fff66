"""The local BM25 backend: retrieval quality on the sample data, index persistence, query errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from search_fixtures import town_documents, write_corpus

from deepeyes import wire
from deepeyes.search.backends.local import CorpusError, LocalBM25Backend
from deepeyes.search.config import SearchConfig
from deepeyes.search.text import TextSearcher


def local_config(corpus: Path, tmp_path: Path) -> SearchConfig:
    cfg = SearchConfig()
    cfg.text.local.corpus_path = str(corpus)
    cfg.text.local.index_dir = str(tmp_path / "bm25-index")
    cfg.cache.enabled = False
    return cfg


def test_local_backend_finds_gold_document_in_top3_for_every_sample_question(sample_dir: Path, tmp_path: Path) -> None:
    cfg = local_config(sample_dir / "search" / "corpus.jsonl", tmp_path)
    searcher = TextSearcher.from_config(cfg)
    questions = [
        json.loads(line) for line in (sample_dir / "search" / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    assert questions, "the sample data has no text-search questions"
    misses = []
    for question in questions:
        outcome = searcher.search(question["query"], top_k=3)
        assert outcome.error is None, outcome.error
        if question["gold_link"] not in [r["link"] for r in outcome.results]:
            misses.append((question["query"], [r["link"] for r in outcome.results]))
    assert not misses, f"{len(misses)}/{len(questions)} questions missed their gold document: {misses[:3]}"


def test_results_render_in_wire_format(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", town_documents(30))
    outcome = TextSearcher.from_config(local_config(corpus, tmp_path)).search("Quillmere 017 mayor")
    assert len(outcome.results) == 5
    top = outcome.results[0]
    assert top["title"] == "Town of Quillmere 017"
    assert top["link"] == "https://atlas.example/towns/17"
    assert "Ottoline Varga017" in top["snippet"]
    rendered = outcome.render()
    assert rendered.startswith(wire.TOOL_RESPONSE_OPEN) and rendered.endswith(wire.TOOL_RESPONSE_CLOSE)
    assert "1. [Town of Quillmere 017](https://atlas.example/towns/17)\nDate published: " in rendered
    assert rendered.count("\n\n") == 4  # five entries separated by blank lines


def test_top_k_and_query_without_known_terms(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", town_documents(30))
    searcher = TextSearcher.from_config(local_config(corpus, tmp_path))
    assert len(searcher.search("Quillmere river Aster", top_k=2).results) == 2
    empty = searcher.search("zyxwvut qqqq")
    assert empty.error is None and empty.results == []
    assert "No results found." in empty.render()


def test_index_is_persisted_and_rebuilt_when_corpus_changes(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", town_documents(20))
    cfg = local_config(corpus, tmp_path)
    cfg.text.local.index_dir = None  # default: next to the corpus
    LocalBM25Backend.from_config(cfg.text.local)
    index_dir = tmp_path / "corpus.jsonl.bm25s"
    meta = index_dir / "deepeyes_index_meta.json"
    assert meta.is_file()
    built_at = meta.stat().st_mtime_ns

    LocalBM25Backend.from_config(cfg.text.local)
    assert meta.stat().st_mtime_ns == built_at, "an unchanged corpus must reuse the saved index"

    documents = town_documents(20) + [
        {"title": "Lighthouse of Brenn", "link": "https://atlas.example/brenn", "text": "The lighthouse of Brenn burns whale oil."}
    ]
    write_corpus(corpus, documents)
    backend = LocalBM25Backend.from_config(cfg.text.local)
    assert meta.stat().st_mtime_ns != built_at
    assert backend.search("lighthouse whale oil", 1)[0]["link"] == "https://atlas.example/brenn"


def test_bad_corpus_line_is_named(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"title": "a", "link": "b", "text": "c"}\n{"title": "no text"}\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"corpus.jsonl:2: missing string field\(s\) \['link', 'text'\]"):
        LocalBM25Backend.from_config(local_config(corpus, tmp_path).text.local)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "the query is empty"),
        ("   \n\t ", "the query is empty"),
        ("x" * 600, "the query is too long (600 characters, limit 512)"),
        (b"caf\xe9 mayor", "not valid UTF-8"),
        ("caf\udce9 mayor", "not valid UTF-8"),
        (None, "must be a string"),
    ],
)
def test_bad_queries_become_clear_error_observations(tmp_path: Path, query: object, message: str) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", town_documents(5))
    outcome = TextSearcher.from_config(local_config(corpus, tmp_path)).search(query)  # type: ignore[arg-type]
    assert outcome.results == []
    assert outcome.error is not None and message in outcome.error
    assert outcome.render() == wire.error_response("invalid query", outcome.error)


def test_utf8_bytes_and_control_characters_are_accepted(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", town_documents(10))
    searcher = TextSearcher.from_config(local_config(corpus, tmp_path))
    outcome = searcher.search(b"Quillmere\x00 007\x07 mayor")
    assert outcome.error is None
    assert outcome.results[0]["link"] == "https://atlas.example/towns/7"
