"""The image-search cache as DeepEyesV2 publishes it, by folder or by hub name.

The seed's ``search_cache_path`` is the folder ``DeepEyesV2_Search_Cache`` unpacks into:
an ``fvqa_*`` cache JSON (MMSearch-R1 shape, keyed by sample index) and a ``cached_images``
folder shipped as zip archives. The published instructions have the user unzip and run a
conversion script; here the folder (or the data set's hub name) is enough: archives are
unpacked once (:func:`deepeyes.hub.extract_archives`) and relative image paths resolve
against the unpacked folder. A path to a cache JSON file keeps working as before.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from deepeyes.hub import extract_archives, resolve
from deepeyes.search.config import ImageSearchConfig
from deepeyes.search.image_cache import ImageCacheError


def _cache_json(folder: Path) -> Path:
    candidates = sorted(folder.glob("*.json"))
    preferred = [p for p in candidates if "cache" in p.name] or candidates
    if len(preferred) == 1:
        return preferred[0]
    if not preferred:
        raise ImageCacheError(f"search_cache_path={folder}: no cache JSON (e.g. fvqa_train_image_search_results_cache.json) in the folder")
    raise ImageCacheError(
        f"search_cache_path={folder}: several cache JSON files ({', '.join(p.name for p in preferred)}); name the one to use"
    )


def image_search_for_cache_path(config: ImageSearchConfig, search_cache_path: str) -> ImageSearchConfig:
    """Image-search settings for the seed's ``search_cache_path`` argument.

    Args:
        config: the settings to start from (descriptor, threshold, ...).
        search_cache_path: a cache JSON file, the folder the published cache unpacks into,
            or a hub data set id (``honglyhly/DeepEyesV2_Search_Cache``).

    Returns:
        ``config`` with ``cache_json``, ``image_root`` (and, unless set, ``index_dir``) set. Query images for the
        similarity index stay as configured: the published cache is looked up by sample
        index, which the RL rows carry.

    Raises:
        deepeyes.hub.HubResolutionError: neither a local path nor a reachable hub data set.
        ImageCacheError: a folder without exactly one cache JSON.
    """
    local = resolve(search_cache_path, "dataset", what="search_cache_path")
    if local.is_file():
        return replace(config, cache_json=str(local), image_root=None)
    unpacked = extract_archives(local)
    index_dir = config.index_dir or str(unpacked / "similarity_index")  # never inside a hub snapshot
    return replace(config, cache_json=str(_cache_json(local)), image_root=str(unpacked), index_dir=index_dir)
