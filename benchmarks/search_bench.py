"""Benchmarks of the search tools (figures for docs/search.md; not part of the test suite).

    .venv/bin/python benchmarks/search_bench.py                 # everything, full size
    .venv/bin/python benchmarks/search_bench.py --docs 10000 --images 5000   # quick run

Measures: BM25 index build and query latency on a synthetic corpus; cache-hit latency with
SQLite and with a real redis-server; image lookup latency over a synthetic similarity index;
recall@1 of near-duplicate queries (0.5x resize, JPEG q=60, 95 % x 95 % crop at a random
offset) and the share of unrelated images correctly answered with "no results".
"""

from __future__ import annotations

import os

# One BLAS thread unless the caller says otherwise: the tools run inside multi-process
# rollout/serving hosts, and on a busy 2-core machine a threaded matrix-vector product
# spends more time waiting for its second core than computing. Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import tempfile
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import redis  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from tqdm import tqdm  # noqa: E402

from deepeyes.search.backends.local import LocalBM25Backend  # noqa: E402
from deepeyes.search.cache import RedisResultCache, SqliteResultCache  # noqa: E402
from deepeyes.search.config import LocalBackendConfig  # noqa: E402
from deepeyes.search.descriptors import ColourLayoutDescriptor  # noqa: E402
from deepeyes.search.image import ImageSearcher  # noqa: E402
from deepeyes.search.image_cache import ImageCacheEntry  # noqa: E402
from deepeyes.search.similarity_index import SimilarityIndex  # noqa: E402
from deepeyes.search.text import TextSearcher  # noqa: E402
from deepeyes.utils.processes import RedisServer  # noqa: E402

SYLLABLES = [
    "ka",
    "ro",
    "mi",
    "tes",
    "vol",
    "an",
    "dri",
    "qu",
    "el",
    "sor",
    "bin",
    "gal",
    "pe",
    "ux",
    "thar",
    "lo",
    "ni",
    "zem",
    "ost",
    "ri",
]


def percentiles(samples: list[tuple[float, float]]) -> str:
    """Wall-clock p50/p95 and CPU-time p50 (CPU time is what contention does not inflate)."""
    wall = np.array([w for w, _ in samples]) * 1000
    cpu = np.array([c for _, c in samples]) * 1000
    wall_text = f"p50 {np.percentile(wall, 50):.3f} ms, p95 {np.percentile(wall, 95):.3f} ms wall"
    return f"{wall_text}; p50 {np.percentile(cpu, 50):.3f} ms CPU (n={len(wall)})"


def timed(calls: list[Callable[[], object]]) -> list[tuple[float, float]]:
    samples = []
    for call in calls:
        wall, cpu = time.perf_counter(), time.thread_time()
        call()
        samples.append((time.perf_counter() - wall, time.thread_time() - cpu))
    return samples


# ------------------------------------------------------------------------------- text


def pseudo_words(rng: np.random.Generator, count: int, syllables: tuple[int, int]) -> list[str]:
    """``count`` distinct made-up words of ``syllables[0]`` to ``syllables[1] - 1`` syllables."""
    words: set[str] = set()
    while len(words) < count:
        lengths = rng.integers(*syllables, size=count)
        picks = rng.integers(0, len(SYLLABLES), size=(count, syllables[1]))
        words.update("".join(SYLLABLES[j] for j in row[:n]) for row, n in zip(picks, lengths, strict=True))
    return sorted(words)[:count]


def synthetic_corpus(path: Path, docs: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """Write ``docs`` documents (Zipf-distributed body words); return ~1000 (query, gold link) pairs."""
    vocabulary = pseudo_words(rng, 60_000, (2, 5))
    names = pseudo_words(rng, docs * 2, (4, 7))
    rng.shuffle(names)
    zipf = 1.0 / np.arange(1, len(vocabulary) + 1)
    lengths = rng.integers(40, 90, size=docs)
    words = rng.choice(len(vocabulary), size=int(lengths.sum()), p=zipf / zipf.sum())
    ends = np.cumsum(lengths)
    queries = []
    with path.open("w", encoding="utf-8") as handle:
        for i in range(docs):
            first, second = names[2 * i], names[2 * i + 1]
            body = [vocabulary[w] for w in words[ends[i] - lengths[i] : ends[i]]]
            text = f"{first.title()} {second.title()} is a place. " + " ".join(body) + "."
            link = f"https://bench.example/{i}"
            handle.write(json.dumps({"title": f"{first.title()} {second.title()}", "link": link, "text": text}) + "\n")
            if i % max(1, docs // 1000) == 0:
                queries.append((f"{first} {second} {body[0]} {body[-1]}", link))
    return queries


def bench_text(docs: int, workdir: Path, rng: np.random.Generator) -> None:
    corpus = workdir / "corpus.jsonl"
    started = time.perf_counter()
    queries = synthetic_corpus(corpus, docs, rng)
    print(f"synthetic corpus: {docs} documents, {corpus.stat().st_size / 1e6:.1f} MB, written in {time.perf_counter() - started:.1f} s")
    cfg = LocalBackendConfig(corpus_path=str(corpus))
    started = time.perf_counter()
    LocalBM25Backend.from_config(cfg)
    print(f"BM25 index build (load + hash + tokenise + index + save): {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    backend = LocalBM25Backend.from_config(cfg)
    print(f"BM25 start with the saved index (load corpus + hash + load index): {time.perf_counter() - started:.1f} s")
    for query, _ in queries[:20]:
        backend.search(query, 5)  # warm-up
    samples = timed([lambda q=q: backend.search(q, 5) for q, _ in queries])
    print(f"BM25 query (top 5, with snippets): {percentiles(samples)}")
    hits = sum(backend.search(q, 1)[0]["link"] == gold for q, gold in queries)
    print(f"BM25 recall@1 of the sampled queries: {hits / len(queries):.3f}")


class StaticBackend:
    identity = "bench"

    def search(self, query: str, top_k: int) -> list[dict]:
        return [
            {"title": f"{query} {i}", "link": f"https://x.example/{i}", "snippet": "s" * 200, "date": "2024-01-01"} for i in range(top_k)
        ]


def bench_cache(workdir: Path) -> None:
    queries = [f"cache benchmark query number {i}" for i in range(2000)]
    with RedisServer() as server:
        stores = {
            "SQLite": SqliteResultCache(workdir / "bench-cache.sqlite", ttl_s=3600),
            "Redis": RedisResultCache(redis.Redis(host=server.host, port=server.port), ttl_s=3600, key_prefix="bench:"),
        }
        for name, store in stores.items():
            searcher = TextSearcher(StaticBackend(), store)
            for query in queries:
                searcher.search(query)
            samples = timed([lambda q=q, s=searcher: s.search(q) for q in queries])
            assert searcher.stats.hits == len(queries)
            print(f"cache hit, {name} (whole TextSearcher.search): {percentiles(samples)}")


# ------------------------------------------------------------------------------ image


def bench_picture(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """Random ellipses/rectangles/lines on a random gradient: distinct per seed, cheap to draw."""
    rng = np.random.default_rng(seed)
    width, height = size
    start, end = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    horizontal = rng.random() < 0.5
    ramp = np.linspace(0.0, 1.0, width if horizontal else height)[:, None]
    line = (start[None, :] * (1 - ramp) + end[None, :] * ramp).astype(np.uint8)
    pixels = np.broadcast_to(line[None] if horizontal else line[:, None], (height, width, 3)).copy()
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        box = [x0, y0, x0 + int(rng.integers(10, width // 2)), y0 + int(rng.integers(10, height // 2))]
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.ellipse(box, fill=colour)
        elif kind == 1:
            draw.rectangle(box, fill=colour)
        else:
            draw.line(box, fill=colour, width=int(rng.integers(2, 10)))
    return image


def perturb(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    small = image.resize((image.width // 2, image.height // 2), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=60)
    decoded = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    crop_w, crop_h = round(decoded.width * 0.95), round(decoded.height * 0.95)
    left, top = int(rng.integers(0, decoded.width - crop_w + 1)), int(rng.integers(0, decoded.height - crop_h + 1))
    return decoded.crop((left, top, left + crop_w, top + crop_h))


def bench_image(entries: int, queries: int, workdir: Path, rng: np.random.Generator) -> None:
    descriptor = ColourLayoutDescriptor()
    index = SimilarityIndex.open(workdir / "image-index", descriptor.name)
    started = time.perf_counter()
    batch = 1000
    for first in tqdm(range(0, entries, batch), desc="drawing + describing", unit="k images"):
        seeds = range(first, min(entries, first + batch))
        vectors = descriptor.index_vectors([bench_picture(s) for s in seeds])
        index.add([str(s) for s in seeds], vectors, [f"bench:{s}" for s in seeds])
    elapsed = time.perf_counter() - started
    print(f"similarity index: {entries} entries x {descriptor.dim} dims built in {elapsed:.1f} s (drawing + describing + saving)")
    started = time.perf_counter()
    index = SimilarityIndex.open(workdir / "image-index", descriptor.name)
    print(f"similarity index reload: {time.perf_counter() - started:.2f} s")

    # Every entry shares a handful of thumbnail files: the benchmark is about lookup, not disk.
    thumbs = []
    for i in range(5):
        path = workdir / f"thumb-{i}.png"
        bench_picture(10_000_000 + i, (160, 120)).save(path)
        thumbs.append(path)
    cache = {str(s): ImageCacheEntry([f"entry {s} result {i}" for i in range(5)], thumbs) for s in range(entries)}
    searcher = ImageSearcher(cache, index, descriptor)

    gold = rng.choice(entries, size=queries, replace=False)
    probes = [perturb(bench_picture(int(s)), rng) for s in gold]
    strangers = [perturb(bench_picture(entries + 1_000_000 + i), rng) for i in range(queries)]
    lookups = timed([lambda p=p: index.search(descriptor.query_vectors(p), top_n=1) for p in probes])
    print(f"image lookup (query descriptor + nearest neighbour over {entries}): {percentiles(lookups)}")
    full = timed([lambda p=p: searcher.search(p) for p in probes[:200]])
    print(f"full image search incl. loading 5 thumbnails: {percentiles(full)}")

    top1 = [index.search(descriptor.query_vectors(p), top_n=1)[0] for p in probes]
    recall = np.mean([key == str(s) for (key, _), s in zip(top1, gold, strict=True)])
    matched = np.mean([key == str(s) and score >= searcher.similarity_threshold for (key, score), s in zip(top1, gold, strict=True)])
    stranger_scores = [index.search(descriptor.query_vectors(p), top_n=1)[0][1] for p in strangers]
    rejected = np.mean([score < searcher.similarity_threshold for score in stranger_scores])
    print(f"near-duplicate recall@1: {recall:.4f}; matched above the threshold {searcher.similarity_threshold}: {matched:.4f}")
    spread = f"p50 {statistics.median(stranger_scores):.3f}, max {max(stranger_scores):.3f}"
    print(f"unrelated images answered 'no results': {rejected:.4f} (their best score: {spread})")


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark text search (BM25, cache) and image search (similarity index).")
    parser.add_argument("--docs", type=int, default=100_000, help="documents in the synthetic BM25 corpus")
    parser.add_argument("--images", type=int, default=50_000, help="entries in the synthetic similarity index")
    parser.add_argument("--queries", type=int, default=1000, help="near-duplicate (and unrelated) image queries")
    parser.add_argument("--only", choices=["text", "cache", "image"], default=None, help="run one part only")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rng = np.random.default_rng(args.seed)
    threads = os.environ["OPENBLAS_NUM_THREADS"]
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; OPENBLAS_NUM_THREADS={threads}")
    with tempfile.TemporaryDirectory(prefix="search-bench-") as tmp:
        workdir = Path(tmp)
        if args.only in (None, "text"):
            bench_text(args.docs, workdir, rng)
        if args.only in (None, "cache"):
            bench_cache(workdir)
        if args.only in (None, "image"):
            bench_image(args.images, args.queries, workdir, rng)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
