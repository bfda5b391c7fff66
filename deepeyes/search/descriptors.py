"""Image descriptors for the similarity index: vectors whose dot product says "same picture".

The default is a deterministic CPU descriptor (no model, a few milliseconds): the
low-frequency 2-D DCT of the luma and chroma planes (a colour-layout descriptor),
frequency-weighted so fine layout counts more than the overall gradient, L2-normalised.
Low frequencies survive resizing and JPEG re-encoding.

Crops are handled by comparing *regions*: the index stores the descriptor of each image's
central region, and a query is described under several hypotheses of how it might have
been cropped (no crop, or a few percent off any side), each hypothesis mapping the query
back onto that same central region; the best hypothesis wins. This costs a handful of
query vectors per lookup instead of multiplying the index size.

The optional CLIP embedder (transformers ``CLIPModel`` from a local checkpoint) gives
semantic neighbours instead; CLIP is robust to small crops by itself, so it uses one view.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

_RGB_TO_YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=np.float32)


class ImageDescriptor(Protocol):
    #: Identifies the descriptor and its parameters; a persisted index built with another is rebuilt.
    name: str

    def index_vectors(self, images: list[Image.Image]) -> np.ndarray:
        """One L2-normalised row per image, as stored in the index."""
        ...

    def query_vectors(self, image: Image.Image) -> np.ndarray:
        """One or more L2-normalised rows for a query; its score is the best row's."""
        ...


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-8)).astype(np.float32)


class ColourLayoutDescriptor:
    """Frequency-weighted DCT colour layout of an image region (see the module docstring)."""

    #: Side of the grid the region is averaged down to before the DCT.
    grid = 32
    #: Luma DCT coefficients kept: 0 < u + v <= luma_band (the DC is dropped: brightness shift).
    luma_band = 14
    #: Chroma DCT coefficients kept: u + v <= chroma_band (DC kept: the overall hue matters).
    chroma_band = 4
    chroma_weight = 0.5
    #: Chroma DCT norm below which a picture counts as (nearly) grey (1.0 = a mean tint of ~3 %).
    chroma_floor = 1.0
    #: The stored region: this fraction of the width and height, centred.
    core = 0.9
    #: Query hypotheses: the query kept this fraction of each side of the original...
    crop_scales = (1.0, 0.95)
    #: ...at these relative offsets (0 = cropped only from the right/bottom, 1 = only from the left/top).
    crop_offsets = (0.0, 0.5, 1.0)
    #: Working resolution the regions are cut from (faster than cutting from a large original).
    work_size = 128

    name = "colour_layout_dct_v2"

    def __init__(self) -> None:
        size = self.luma_band + 1
        # Only the low-frequency corner is needed, so the DCT is two small matrix products.
        k, n = np.meshgrid(np.arange(size), np.arange(self.grid), indexing="ij")
        basis = np.cos(np.pi * (2 * n + 1) * k / (2 * self.grid)) * np.sqrt(2.0 / self.grid)
        basis[0] /= np.sqrt(2.0)
        self._dct_basis = basis.astype(np.float32)
        u, v = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        band = u + v
        self._luma_mask = (band > 0) & (band <= self.luma_band)
        self._luma_weight = band[self._luma_mask].astype(np.float32)
        self._chroma_mask = band <= self.chroma_band
        self.dim = int(self._luma_mask.sum() + 2 * self._chroma_mask.sum())

    def index_vectors(self, images: list[Image.Image]) -> np.ndarray:
        margin = (1.0 - self.core) / 2
        box = (margin, margin, 1.0 - margin, 1.0 - margin)
        return np.concatenate([self._describe(self._work_image(image), [box]) for image in images])

    def query_vectors(self, image: Image.Image) -> np.ndarray:
        return self._describe(self._work_image(image), self._query_boxes)

    @property
    def _query_boxes(self) -> list[tuple[float, float, float, float]]:
        """Where the original's central region lies in the query, for each crop hypothesis."""
        margin = (1.0 - self.core) / 2
        boxes = []
        for scale in self.crop_scales:
            offsets = (0.0,) if scale == 1.0 else self.crop_offsets
            for fx in offsets:
                for fy in offsets:
                    # The query shows [ox, ox + scale] of the original; map the core into it.
                    ox, oy = (1.0 - scale) * fx, (1.0 - scale) * fy
                    left, top = (margin - ox) / scale, (margin - oy) / scale
                    right, bottom = (1.0 - margin - ox) / scale, (1.0 - margin - oy) / scale
                    boxes.append((max(0.0, left), max(0.0, top), min(1.0, right), min(1.0, bottom)))
        return boxes

    def _work_image(self, image: Image.Image) -> Image.Image:
        return image.convert("RGB").resize((self.work_size, self.work_size), Image.Resampling.BOX)

    def _describe(self, work: Image.Image, boxes: list[tuple[float, float, float, float]]) -> np.ndarray:
        """One descriptor row per region ``box`` (fractions of the work image)."""
        size = self.work_size
        regions = (
            np.stack(
                [np.asarray(work.resize((self.grid, self.grid), Image.Resampling.BOX, box=tuple(c * size for c in box))) for box in boxes]
            ).astype(np.float32)
            / 255.0
        )
        planes = np.moveaxis(regions @ _RGB_TO_YCBCR.T, -1, 1)  # (boxes, 3, grid, grid)
        coefficients = self._dct_basis @ planes @ self._dct_basis.T  # low-frequency DCT corner
        luma = coefficients[:, 0][:, self._luma_mask] * self._luma_weight
        chroma = coefficients[:, 1:][:, :, self._chroma_mask].reshape(len(boxes), -1)
        # Chroma is scaled by its norm only above a floor: a grey picture's chroma is JPEG
        # noise, and normalising that to unit length would swamp the luma part.
        chroma_norm = np.maximum(np.linalg.norm(chroma, axis=1, keepdims=True), self.chroma_floor)
        return _unit_rows(np.concatenate([_unit_rows(luma), self.chroma_weight * chroma / chroma_norm], axis=1))


class ClipEmbedder:
    """Image embeddings from a local CLIP checkpoint (``CLIPModel`` + its image processor)."""

    def __init__(self, checkpoint: str | Path, batch_size: int = 32):
        import torch
        from transformers import CLIPImageProcessor, CLIPModel

        checkpoint = Path(checkpoint)
        if not checkpoint.is_dir():
            raise FileNotFoundError(f"CLIP checkpoint folder not found: {checkpoint} (search.image.clip_checkpoint)")
        self._torch = torch
        self.model = CLIPModel.from_pretrained(str(checkpoint)).eval()
        self.processor = CLIPImageProcessor.from_pretrained(str(checkpoint))
        self.batch_size = batch_size
        self.name = f"clip:{checkpoint.resolve()}"

    def index_vectors(self, images: list[Image.Image]) -> np.ndarray:
        chunks = [self._embed(images[i : i + self.batch_size]) for i in range(0, len(images), self.batch_size)]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.model.config.projection_dim), np.float32)

    def query_vectors(self, image: Image.Image) -> np.ndarray:
        return self._embed([image])

    def _embed(self, images: list[Image.Image]) -> np.ndarray:
        inputs = self.processor(images=[image.convert("RGB") for image in images], return_tensors="pt")
        with self._torch.no_grad():
            features = self.model.get_image_features(pixel_values=inputs["pixel_values"])
        if not isinstance(features, self._torch.Tensor):  # some versions wrap it in a model output
            features = features.pooler_output
        return _unit_rows(features.float().cpu().numpy())
