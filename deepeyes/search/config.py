"""Settings of text and image search: the ``search:`` section of ``tool_manager_config.yaml``.

Every field has a default that points at the synthetic sample data, so an empty ``search:``
section gives a working offline setup when run from the checkout. Relative paths are taken
from the current working directory, as in every stage (``deepeyes.paths.resolve_path``,
docs/configuration.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from deepeyes.paths import DATA_DIR, REPO_ROOT, SAMPLE_DIR
from deepeyes.paths import resolve_path as _resolve_path

HttpPresetName = Literal["bing", "serper", "serpapi", "baidu", "custom"]


def text_search_for_api_type(config: TextSearchConfig, api_type: str) -> TextSearchConfig:
    """The text-search settings the seed's ``text_search_api_type`` argument selects.

    ``local``, ``http`` and ``private`` name a backend; a web-search provider's name
    (``baidu``, ``bing``, ``serper``, ``serpapi``, ``custom``) selects the HTTP backend with
    that preset, whose API key is read from the preset's environment variable on the first
    search (a missing key is reported then, naming the variable).

    Raises:
        ValueError: ``api_type`` is none of these.
    """
    if api_type in ("local", "http"):
        return replace(config, backend=api_type)
    if api_type == "private":
        return replace(config, backend="private", private=replace(config.private, api_type=api_type))
    if api_type in get_args(HttpPresetName):
        return replace(config, backend="http", http=replace(config.http, preset=api_type))
    raise ValueError(
        f"text_search_api_type={api_type!r}: expected local, http, private or a provider preset "
        f"({', '.join(get_args(HttpPresetName))})"
    )


def resolve_path(path: str | Path) -> Path:
    """Absolute form of a configured path (relative ones are taken from the current directory)."""
    return _resolve_path(path)


@dataclass
class LocalBackendConfig:
    """BM25 over a JSONL corpus; the index is persisted next to the corpus."""

    corpus_path: str = str(SAMPLE_DIR / "search" / "corpus.jsonl")
    #: Where the BM25 index lives; ``None`` puts it next to the corpus (``<corpus>.bm25s/``).
    index_dir: str | None = None
    #: Longest snippet (characters) cut from a document's text around the query terms.
    snippet_chars: int = 300
    k1: float = 1.5
    b: float = 0.75
    #: bm25s stopword list name ("en") or "none".
    stopwords: str = "en"


@dataclass
class HttpFieldMap:
    """Where each result field sits inside one result item (dotted paths, ``a|b`` = first present)."""

    title: str = "title"
    link: str = "link"
    snippet: str = "snippet"
    date: str = "date"


@dataclass
class HttpBackendConfig:
    """A JSON web-search API. ``preset`` fills every field left at ``None``.

    Templates (``params``, ``json_body``, ``headers``) may hold the placeholders
    ``{query}``, ``{top_k}`` and ``{api_key}``; a value that is exactly ``"{top_k}"``
    becomes an integer, so JSON bodies get a number.
    """

    preset: HttpPresetName = "serper"
    endpoint: str | None = None
    method: Literal["GET", "POST"] | None = None
    params: dict[str, str] | None = None
    json_body: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    #: Name of the environment variable holding the API key (the key itself never goes in YAML).
    api_key_env: str | None = None
    #: Dotted path to the list of result items in the response body.
    results_path: str | None = None
    fields: HttpFieldMap | None = None
    timeout_s: float = 10.0


#: The seed's customisation point: a file users edit, holding ``text_search(query, api_type)``.
SEED_SEARCH_HOOK = f"{REPO_ROOT / 'reinforcement_learning' / 'search_utils.py'}:text_search"


@dataclass
class PrivateBackendConfig:
    """A user search function, ``package.module:function`` or ``path/to/file.py:function``.

    Called as ``fn(query, top_k, **kwargs)``, or as ``fn(query, api_type, **kwargs)`` when
    its signature is the seed's two-argument ``text_search(query, api_type)`` (no
    ``top_k`` parameter). It returns a list of mappings with ``title`` and optional
    ``link``, ``snippet`` (or ``text``) and ``date``; a private knowledge base plugs in
    here. The default is the seed's hook file, so ``backend: private`` works unchanged.
    """

    function: str = SEED_SEARCH_HOOK
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: Passed as ``api_type`` to a two-argument seed-style function.
    api_type: str = "private"


@dataclass
class RetryConfig:
    """Retries with exponential backoff on timeouts, connection errors, 429 and 5xx."""

    max_attempts: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0


@dataclass
class CacheConfig:
    """Result cache: Redis when a client or URL is given (``backend: auto``), else SQLite."""

    enabled: bool = True
    backend: Literal["auto", "redis", "sqlite"] = "auto"
    ttl_s: float = 24 * 3600.0
    #: Skip cache reads (results are still written, so the cache is refreshed).
    bypass: bool = False
    sqlite_path: str = str(DATA_DIR / "cache" / "text_search_cache.sqlite")
    #: ``redis://host:port/db``; used when no client is handed to ``TextSearcher.from_config``.
    redis_url: str | None = None
    key_prefix: str = "deepeyes:search:text:"
    #: After a cache-store failure, search without the cache for this long instead of
    #: paying the store's connection timeout on every call.
    outage_pause_s: float = 30.0


@dataclass
class TextSearchConfig:
    backend: Literal["local", "http", "private"] = "local"
    top_k: int = 5
    #: Longer queries are refused with an error observation (models sometimes paste whole pages).
    max_query_chars: int = 512
    local: LocalBackendConfig = field(default_factory=LocalBackendConfig)
    http: HttpBackendConfig = field(default_factory=HttpBackendConfig)
    private: PrivateBackendConfig = field(default_factory=PrivateBackendConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)


@dataclass
class ImageSearchConfig:
    """MMSearch-R1-style cache plus a similarity index over query images."""

    cache_json: str = str(SAMPLE_DIR / "image_search" / "cache.json")
    #: Root for relative ``cached_images_path`` entries; ``None`` = the cache file's folder.
    image_root: str | None = None
    #: ``{index, image_path}`` JSONL naming each entry's query image; ``None`` = none.
    queries_jsonl: str | None = str(SAMPLE_DIR / "image_search" / "queries.jsonl")
    #: Root for relative ``image_path`` values of ``queries_jsonl``.
    query_image_root: str = str(SAMPLE_DIR)
    #: What the similarity index is built from: the entries' query images and/or their cached images.
    index_sources: list[Literal["queries", "cached_images"]] = field(default_factory=lambda: ["queries"])
    #: Where the similarity index is persisted; ``None`` = ``<cache_json folder>/similarity_index``.
    index_dir: str | None = None
    descriptor: Literal["colour_layout", "clip"] = "colour_layout"
    #: Local CLIP checkpoint folder (``save_pretrained`` layout); required by ``descriptor: clip``.
    clip_checkpoint: str | None = None
    #: Cosine similarity a neighbour needs to count as the same image (depends on the descriptor).
    similarity_threshold: float = 0.91
    max_results: int = 5
    #: Longest side of the thumbnails handed to the model.
    thumbnail_size: int = 256


@dataclass
class SearchConfig:
    """The ``search:`` section of ``tool_manager_config.yaml``."""

    text: TextSearchConfig = field(default_factory=TextSearchConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    image: ImageSearchConfig = field(default_factory=ImageSearchConfig)
