"""The ``search:`` config section: defaults, strict loading, and the snippet documented in docs/search.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deepeyes.config import ConfigError, from_dict, load_config
from deepeyes.paths import REPO_ROOT
from deepeyes.search.config import SearchConfig, resolve_path


def test_defaults_point_at_sample_data() -> None:
    cfg = SearchConfig()
    assert cfg.text.backend == "local" and cfg.text.top_k == 5
    assert cfg.cache.ttl_s == 86400
    assert resolve_path(cfg.text.local.corpus_path) == REPO_ROOT / "data/sample/search/corpus.jsonl"
    assert resolve_path(cfg.image.cache_json) == REPO_ROOT / "data/sample/image_search/cache.json"


def test_unknown_and_ill_typed_keys_fail() -> None:
    with pytest.raises(ConfigError, match="unknown key 'search.text.bakend'"):
        from_dict(SearchConfig, {"text": {"bakend": "local"}}, prefix="search")
    with pytest.raises(ConfigError, match="'http' matches none|is not one of"):
        from_dict(SearchConfig, {"text": {"backend": "web"}}, prefix="search")
    with pytest.raises(ConfigError, match="search.cache.ttl_s"):
        from_dict(SearchConfig, {"cache": {"ttl_s": "a day"}}, prefix="search")


def test_documented_yaml_snippet_loads(tmp_path: Path) -> None:
    doc = (REPO_ROOT / "docs" / "search.md").read_text(encoding="utf-8")
    snippet = re.search(r"```yaml\n(search:\n.*?)```", doc, re.S)
    assert snippet, "docs/search.md must hold the recommended search: section as a yaml block"
    path = tmp_path / "tool_manager_config.yaml"
    path.write_text(snippet.group(1), encoding="utf-8")
    cfg = load_config(path, SearchConfig, section="search")
    assert cfg == SearchConfig(), "the documented snippet spells out the defaults"
