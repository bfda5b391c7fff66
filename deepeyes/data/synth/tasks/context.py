"""What a task builder receives besides its random generator."""

from __future__ import annotations

from dataclasses import dataclass, field

from deepeyes.data.synth.world import Entity, Landmark


@dataclass
class TaskContext:
    #: The fictional entity a text-search question is about (text_search only).
    entity: Entity | None = None
    #: The landmark pictured in an image-search question (image_search only).
    landmark: Landmark | None = None
    #: Every landmark, to fill image-search results with other pages.
    landmarks: list[Landmark] = field(default_factory=list)
    #: True for the held-out splits (RL validation, evaluation): the builder then draws its
    #: values from the held-out side of :func:`~deepeyes.data.synth.sample.is_heldout_value`,
    #: so no held-out question repeats a training one.
    heldout: bool = False
