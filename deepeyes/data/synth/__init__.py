"""Synthetic sample data for the whole pipeline (``python -m deepeyes.data.synth``).

Small, deterministic, offline data in every format the stages read: seed and ShareGPT
SFT records with real tool trajectories, verl RL parquet, VLMEvalKit-style eval TSVs, a
local text corpus and an MMSearch-R1-style image-search cache. ``data/README.md``
documents each file.
"""

from deepeyes.data.synth.config import GENERATOR_VERSION, SynthConfig
from deepeyes.data.synth.pipeline import generate

__all__ = ["GENERATOR_VERSION", "SynthConfig", "generate"]
