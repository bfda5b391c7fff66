"""A configurable JSON web-search client (Bing, Serper, SerpApi, Baidu or a custom API).

One generic client instead of one class per provider: a provider is an endpoint, request
templates and a field map (see :mod:`deepeyes.search.backends.http_presets`), so users can
point it at any JSON API from YAML alone.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import requests

from deepeyes.search.backends.base import BackendError, make_result
from deepeyes.search.backends.http_presets import PRESETS, HttpPreset
from deepeyes.search.config import HttpBackendConfig

logger = logging.getLogger(__name__)

_API_KEY = "{api_key}"


def merged_preset(cfg: HttpBackendConfig) -> HttpPreset:
    """The preset named by ``cfg.preset`` with every non-``None`` override from ``cfg`` applied."""
    overrides = {
        name: getattr(cfg, name)
        for name in ("endpoint", "method", "params", "json_body", "headers", "api_key_env", "results_path", "fields")
        if getattr(cfg, name) is not None
    }
    preset = dataclasses.replace(PRESETS[cfg.preset], **overrides)
    if not preset.endpoint:
        raise ValueError(f"search.text.http: preset '{cfg.preset}' needs an endpoint")
    return preset


def fill_template(template: Any, values: dict[str, Any]) -> Any:
    """Substitute ``{query}``, ``{top_k}``, ``{api_key}`` in every string of a nested template."""
    if isinstance(template, dict):
        return {key: fill_template(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [fill_template(value, values) for value in template]
    if isinstance(template, str):
        if template == "{top_k}":
            return values["top_k"]
        for name, value in values.items():
            template = template.replace("{" + name + "}", str(value))
        return template
    return template


def lookup(data: Any, path: str) -> Any:
    """Value at a dotted path (``a.b.0.c``); ``a|b`` tries alternatives; ``None`` when absent."""
    for alternative in path.split("|"):
        value = data
        for part in alternative.split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                value = None
                break
        if value is not None:
            return value
    return None


def _mentions_api_key(template: Any) -> bool:
    if isinstance(template, dict):
        return any(_mentions_api_key(v) for v in template.values())
    if isinstance(template, list):
        return any(_mentions_api_key(v) for v in template)
    return isinstance(template, str) and _API_KEY in template


class HttpSearchBackend:
    """Sends one request per search; transient failures raise retryable :class:`BackendError`."""

    def __init__(self, preset: HttpPreset, timeout_s: float, name: str, session: requests.Session | None = None):
        self.preset = preset
        self.timeout_s = timeout_s
        self.session = session or requests.Session()
        self.identity = f"http:{name}:{preset.endpoint}"
        self.needs_key = _mentions_api_key([preset.params, preset.json_body, preset.headers])
        if self.needs_key and (not preset.api_key_env or not os.environ.get(preset.api_key_env)):
            logger.warning("text search '%s' needs an API key in $%s, which is not set", name, preset.api_key_env)

    @classmethod
    def from_config(cls, cfg: HttpBackendConfig) -> HttpSearchBackend:
        return cls(merged_preset(cfg), cfg.timeout_s, cfg.preset)

    def _api_key(self) -> str:
        if not self.needs_key:
            return ""
        env = self.preset.api_key_env
        key = os.environ.get(env) if env else None
        if not key:
            raise BackendError(
                f"the search API key is missing: set the environment variable {env or '(search.text.http.api_key_env is unset)'}"
            )
        return key

    def search(self, query: str, top_k: int) -> list[dict[str, Any]]:
        values = {"query": query, "top_k": top_k, "api_key": self._api_key()}
        preset = self.preset
        try:
            response = self.session.request(
                preset.method,
                preset.endpoint,
                params=fill_template(preset.params, values) or None,
                json=fill_template(preset.json_body, values) if preset.json_body is not None else None,
                headers=fill_template(preset.headers, values),
                timeout=self.timeout_s,
            )
        except requests.Timeout as exc:
            raise BackendError(f"the search service timed out after {self.timeout_s:g} s", retryable=True) from exc
        except requests.ConnectionError as exc:
            raise BackendError("could not connect to the search service", retryable=True) from exc
        except requests.RequestException as exc:
            raise BackendError(f"the request to the search service failed ({type(exc).__name__}: {exc})") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise BackendError(
                f"the search service answered HTTP {response.status_code}",
                retryable=True,
                retry_after=_retry_after(response),
            )
        if response.status_code >= 400:
            raise BackendError(f"the search service refused the request (HTTP {response.status_code}: {response.text[:200]})")
        return self._parse(response, top_k)

    def _parse(self, response: requests.Response, top_k: int) -> list[dict[str, Any]]:
        try:
            body = response.json()
        except ValueError as exc:
            raise BackendError("the search service returned a malformed (non-JSON) response") from exc
        if not isinstance(body, dict):
            raise BackendError("the search service returned a malformed response (not a JSON object)")
        items = lookup(body, self.preset.results_path)
        if items is None:
            return []  # providers omit the result list when nothing matched
        if not isinstance(items, list):
            raise BackendError(f"the search service returned a malformed response ('{self.preset.results_path}' is not a list)")
        fields = self.preset.fields
        results = []
        for item in items:
            title = lookup(item, fields.title) if isinstance(item, dict) else None
            if not title:
                continue
            results.append(make_result(title, lookup(item, fields.link), lookup(item, fields.snippet), lookup(item, fields.date)))
        if items and not results:
            raise BackendError(f"the search service returned a malformed response (no item has a '{fields.title}' field)")
        return results[:top_k]


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP-date; the normal backoff is good enough
