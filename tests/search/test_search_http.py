"""The HTTP backend: every preset against a loopback stand-in in that provider's documented shape."""

from __future__ import annotations

import pytest
from search_standin import STANDIN_KEY, StandIn

from deepeyes.search.config import SearchConfig
from deepeyes.search.text import TextSearcher

PRESET_PATHS = {
    "bing": "/v7.0/search",
    "serper": "/search",
    "serpapi": "/search.json",
    "baidu": "/v2/ai_search/web_search",
}
PRESET_DATES = {"bing": "2024-05-01T10:00:00.0000000Z", "serper": "Mar 3, 2024", "serpapi": "Jan 2, 2023", "baidu": "2025-02-01 08:00:00"}


def http_searcher(standin: StandIn, preset: str, monkeypatch: pytest.MonkeyPatch, sleeps: list[float] | None = None) -> TextSearcher:
    cfg = SearchConfig()
    cfg.text.backend = "http"
    cfg.text.http.preset = preset  # type: ignore[assignment]
    cfg.text.http.endpoint = standin.base_url + PRESET_PATHS[preset]
    cfg.text.http.api_key_env = "DEEPEYES_TEST_SEARCH_KEY"
    cfg.text.http.timeout_s = 0.5
    cfg.text.retry.backoff_s = 0.01
    cfg.cache.enabled = False
    monkeypatch.setenv("DEEPEYES_TEST_SEARCH_KEY", STANDIN_KEY)
    searcher = TextSearcher.from_config(cfg)
    if sleeps is not None:
        searcher._sleep = sleeps.append
    return searcher


@pytest.mark.parametrize("preset", sorted(PRESET_PATHS))
def test_preset_maps_provider_response(standin: StandIn, preset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = http_searcher(standin, preset, monkeypatch).search("Quillmere bridges", top_k=3)
    assert outcome.error is None
    assert [r["title"] for r in outcome.results] == [f"Quillmere bridges result {i}" for i in range(3)]
    assert outcome.results[0] == {
        "title": "Quillmere bridges result 0",
        "link": "https://web.example/0",
        "snippet": "About Quillmere bridges, page 0.",
        "date": PRESET_DATES[preset],
    }
    assert "1. [Quillmere bridges result 0](https://web.example/0)" in outcome.render()
    assert standin.requests[0]["path"] == PRESET_PATHS[preset]


@pytest.mark.parametrize("preset", sorted(PRESET_PATHS))
def test_preset_retries_429_and_5xx_then_succeeds(standin: StandIn, preset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    standin.failures.extend([429, 503])
    outcome = http_searcher(standin, preset, monkeypatch, sleeps).search("weaving")
    assert outcome.error is None and len(outcome.results) == 5
    assert len(standin.requests) == 3
    assert sleeps == [0.01, 0.02]  # exponential backoff


@pytest.mark.parametrize("preset", sorted(PRESET_PATHS))
def test_preset_malformed_body_is_an_error_observation(standin: StandIn, preset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    standin.failures.append("malformed")
    outcome = http_searcher(standin, preset, monkeypatch).search("weaving")
    assert outcome.results == [] and "malformed" in outcome.error
    assert outcome.render().startswith("<tool_response>\nError (search): ")
    assert len(standin.requests) == 1, "a malformed body is not retried"


def test_persistent_5xx_gives_up_after_max_attempts(standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    standin.failures.extend([500, 502, 503, 504])
    outcome = http_searcher(standin, "serper", monkeypatch, []).search("weaving")
    assert outcome.error == "the search service answered HTTP 503 (gave up after 3 attempts)"
    assert len(standin.requests) == 3


def test_retry_after_header_is_honoured_up_to_the_cap(standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    standin.failures.append(429)
    standin.retry_after = "3"
    assert http_searcher(standin, "bing", monkeypatch, sleeps).search("weaving").error is None
    assert sleeps == [3.0]


def test_timeout_is_retried(standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    standin.failures.append("sleep")
    outcome = http_searcher(standin, "serpapi", monkeypatch, []).search("weaving")
    assert outcome.error is None and len(standin.requests) == 2


def test_json_that_is_not_an_object_is_malformed(standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    standin.failures.append("not-object")
    assert "not a JSON object" in http_searcher(standin, "baidu", monkeypatch).search("weaving").error


def test_wrong_or_missing_api_key(standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    searcher = http_searcher(standin, "serper", monkeypatch)
    monkeypatch.setenv("DEEPEYES_TEST_SEARCH_KEY", "wrong")
    refused = searcher.search("weaving")
    assert "refused the request (HTTP 401" in refused.error and len(standin.requests) == 1
    monkeypatch.delenv("DEEPEYES_TEST_SEARCH_KEY")
    missing = searcher.search("weaving")
    assert missing.error == "the search API key is missing: set the environment variable DEEPEYES_TEST_SEARCH_KEY"


def test_custom_api_from_yaml_fields(standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider without a preset: every request and response detail comes from the config."""
    cfg = SearchConfig()
    cfg.text.backend = "http"
    cfg.text.http.preset = "custom"
    cfg.text.http.endpoint = standin.base_url + "/v2/ai_search/web_search"
    cfg.text.http.method = "POST"
    cfg.text.http.json_body = {
        "messages": [{"role": "user", "content": "{query}"}],
        "resource_type_filter": [{"type": "web", "top_k": "{top_k}"}],
    }
    cfg.text.http.headers = {"Authorization": "Bearer {api_key}"}
    cfg.text.http.api_key_env = "MY_KB_KEY"
    cfg.text.http.results_path = "references"
    from deepeyes.search.config import HttpFieldMap

    cfg.text.http.fields = HttpFieldMap(title="title", link="url", snippet="content", date="missing.field")
    cfg.cache.enabled = False
    monkeypatch.setenv("MY_KB_KEY", STANDIN_KEY)
    outcome = TextSearcher.from_config(cfg).search("lanterns", top_k=2)
    assert [r["link"] for r in outcome.results] == ["https://web.example/0", "https://web.example/1"]
    assert outcome.results[0]["date"] is None
    assert standin.requests[0]["json"]["resource_type_filter"][0]["top_k"] == 2


def test_connection_refused_is_an_error_after_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    from deepeyes.utils.processes import free_port

    dead = StandIn(base_url=f"http://127.0.0.1:{free_port()}")
    outcome = http_searcher(dead, "serper", monkeypatch, []).search("weaving")
    assert outcome.error == "could not connect to the search service (gave up after 3 attempts)"
