"""A user-supplied search function (``module:function``), e.g. a private knowledge base."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from deepeyes.search.backends.base import BackendError, make_result
from deepeyes.search.config import PrivateBackendConfig, resolve_path


def _load_module(module_name: str) -> Any:
    """A dotted module name, or a ``.py`` file (relative to the repository root), loaded fresh."""
    if not module_name.endswith(".py"):
        return importlib.import_module(module_name)
    path = resolve_path(module_name)
    if not path.is_file():
        raise ValueError(f"search.text.private.function: no such file {path}")
    spec = importlib.util.spec_from_file_location(f"deepeyes_private_search_{Path(path).stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def import_callable(spec: str) -> Callable[..., Any]:
    """Resolve ``package.module:function`` or ``path/to/file.py:function`` (clear errors for a bad spec, module or name)."""
    module_name, sep, attribute = spec.rpartition(":") if spec.count(":") > 1 else spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"search.text.private.function must look like 'module:function' or 'file.py:function', got {spec!r}")
    module = _load_module(module_name)
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"search.text.private.function: {module_name} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"search.text.private.function: {spec} is not callable")
    return target


class PrivateSearchBackend:
    """Calls ``fn(query, top_k, **kwargs)`` and checks that it returned result-like mappings."""

    def __init__(self, function: Callable[..., Any], kwargs: dict[str, Any], spec: str, api_type: str = "private"):
        self.function = function
        self.kwargs = kwargs
        self.identity = f"private:{spec}"
        self.api_type = api_type
        # The seed's hook is text_search(query, api_type): it takes no result count.
        self._seed_signature = "top_k" not in inspect.signature(function).parameters and "api_type" in inspect.signature(function).parameters

    @classmethod
    def from_config(cls, cfg: PrivateBackendConfig) -> PrivateSearchBackend:
        return cls(import_callable(cfg.function), dict(cfg.kwargs), cfg.function, cfg.api_type)

    def search(self, query: str, top_k: int) -> list[dict[str, Any]]:
        try:
            if self._seed_signature:
                raw = self.function(query, self.api_type, **self.kwargs)
            else:
                raw = self.function(query, top_k, **self.kwargs)
        except TimeoutError as exc:
            raise BackendError(f"the private search function timed out: {exc}", retryable=True) from exc
        except Exception as exc:  # user code: any failure becomes an observation, not a crash
            raise BackendError(f"the private search function failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(raw, (list, tuple)):
            raise BackendError(f"the private search function returned {type(raw).__name__}, expected a list of results")
        results = []
        for item in raw:
            if not isinstance(item, Mapping) or not item.get("title"):
                raise BackendError("the private search function returned an item without a 'title'")
            snippet = item.get("snippet", item.get("text", ""))
            results.append(make_result(item["title"], item.get("link", ""), snippet, item.get("date")))
        return results[:top_k]
