"""The seed's search settings: provider names for ``text_search_api_type`` and its editable hook file."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from deepeyes.search.backends.base import BackendError
from deepeyes.search.config import (
    SEED_SEARCH_HOOK,
    SearchConfig,
    TextSearchConfig,
    text_search_for_api_type,
)
from deepeyes.search.text import TextSearcher


@pytest.mark.parametrize("provider", ["baidu", "bing", "serper", "serpapi"])
def test_provider_names_select_the_http_backend_with_that_preset(provider: str) -> None:
    config = text_search_for_api_type(TextSearchConfig(), provider)
    assert (config.backend, config.http.preset) == ("http", provider)


@pytest.mark.parametrize("api_type", ["local", "http", "private"])
def test_backend_names_stay_backends(api_type: str) -> None:
    assert text_search_for_api_type(TextSearchConfig(), api_type).backend == api_type


def test_unknown_api_type_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="'google'.*baidu"):
        text_search_for_api_type(TextSearchConfig(), "google")


def _searcher(text: TextSearchConfig) -> TextSearcher:
    config = SearchConfig(text=text)
    config.cache.enabled = False
    config.text.retry.backoff_s = 0.0
    return TextSearcher.from_config(config)


def test_missing_provider_key_is_reported_on_first_search_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BAIDU_SEARCH_API_KEY", raising=False)
    searcher = _searcher(text_search_for_api_type(TextSearchConfig(), "baidu"))  # constructing does not fail
    env = searcher.backend.preset.api_key_env  # type: ignore[attr-defined]
    with pytest.raises(BackendError, match=env):
        searcher.backend.search("eiffel tower height", 5)


def test_private_without_settings_calls_the_shipped_seed_hook() -> None:
    text = text_search_for_api_type(TextSearchConfig(), "private")
    assert text.private.function == SEED_SEARCH_HOOK
    results = _searcher(text).backend.search("museum", 5)
    assert results and all(r["title"] for r in results)  # the shipped hook searches the sample corpus


def test_an_edited_hook_file_is_used_with_its_seed_signature(tmp_path: Path) -> None:
    hook = tmp_path / "search_utils.py"
    hook.write_text(
        textwrap.dedent(
            """
            def text_search(query, api_type):
                return [{"title": f"{api_type} result for {query}", "link": "kb://1", "snippet": "from my knowledge base"}]
            """
        ),
        encoding="utf-8",
    )
    text = text_search_for_api_type(TextSearchConfig(), "private")
    text.private.function = f"{hook}:text_search"
    results = _searcher(text).backend.search("quarterly revenue", 5)
    assert [r["title"] for r in results] == ["private result for quarterly revenue"]
