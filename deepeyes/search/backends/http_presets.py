"""Request and response shapes of common web-search APIs, as their documentation describes them.

A preset is only data: the generic client in :mod:`deepeyes.search.backends.http` fills
the templates and reads the fields. Adding a provider means adding an entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deepeyes.search.config import HttpFieldMap


@dataclass(frozen=True)
class HttpPreset:
    endpoint: str
    method: str
    params: dict[str, str]
    json_body: dict[str, Any] | None
    headers: dict[str, str]
    api_key_env: str | None
    results_path: str
    fields: HttpFieldMap = field(default_factory=HttpFieldMap)


PRESETS: dict[str, HttpPreset] = {
    # Bing Web Search API v7: GET /v7.0/search?q=&count=, key in Ocp-Apim-Subscription-Key,
    # results in webPages.value[] with name/url/snippet (dates only on some pages).
    "bing": HttpPreset(
        endpoint="https://api.bing.microsoft.com/v7.0/search",
        method="GET",
        params={"q": "{query}", "count": "{top_k}", "textFormat": "Raw"},
        json_body=None,
        headers={"Ocp-Apim-Subscription-Key": "{api_key}"},
        api_key_env="BING_SEARCH_API_KEY",
        results_path="webPages.value",
        fields=HttpFieldMap(title="name", link="url", snippet="snippet", date="datePublished|dateLastCrawled"),
    ),
    # Serper (google.serper.dev): POST {"q", "num"} with X-API-KEY; results in organic[].
    "serper": HttpPreset(
        endpoint="https://google.serper.dev/search",
        method="POST",
        params={},
        json_body={"q": "{query}", "num": "{top_k}"},
        headers={"X-API-KEY": "{api_key}"},
        api_key_env="SERPER_API_KEY",
        results_path="organic",
        fields=HttpFieldMap(title="title", link="link", snippet="snippet", date="date"),
    ),
    # SerpApi: GET /search.json?engine=google&q=&num=&api_key=; results in organic_results[].
    "serpapi": HttpPreset(
        endpoint="https://serpapi.com/search.json",
        method="GET",
        params={"engine": "google", "q": "{query}", "num": "{top_k}", "api_key": "{api_key}"},
        json_body=None,
        headers={},
        api_key_env="SERPAPI_API_KEY",
        results_path="organic_results",
        fields=HttpFieldMap(title="title", link="link", snippet="snippet", date="date"),
    ),
    # Baidu AI Search (Qianfan) web_search: POST messages + resource_type_filter with a
    # Bearer key; results in references[] with title/url/content/date.
    "baidu": HttpPreset(
        endpoint="https://qianfan.baidubce.com/v2/ai_search/web_search",
        method="POST",
        params={},
        json_body={
            "messages": [{"role": "user", "content": "{query}"}],
            "search_source": "baidu_search_v2",
            "resource_type_filter": [{"type": "web", "top_k": "{top_k}"}],
        },
        headers={"Authorization": "Bearer {api_key}"},
        api_key_env="BAIDU_SEARCH_API_KEY",
        results_path="references",
        fields=HttpFieldMap(title="title", link="url", snippet="content|snippet", date="date"),
    ),
    # A blank slate: every field comes from the YAML.
    "custom": HttpPreset(
        endpoint="",
        method="GET",
        params={"q": "{query}"},
        json_body=None,
        headers={},
        api_key_env=None,
        results_path="results",
    ),
}
