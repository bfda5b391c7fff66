"""Identify a fictional landmark from its picture; its name is only in the image-search cache.

Each question gets its own MMSearch-R1-style cache entry: five web results (title +
thumbnail), one of which shows the same landmark. The trajectory runs an image search on
the original image and reads the answer from the matching result's title.

The matching page is ranked first, as a reverse image search ranks a page carrying the very
same picture: the rank is then the signal a model without useful vision (the tiny default's
vision tower is random and frozen) can learn from, and the title is where the answer is.
The other four results are other landmarks' pages, so the title still has to be read.
"""

from __future__ import annotations

import random

from PIL import Image

from deepeyes.data.synth.drawing import new_canvas
from deepeyes.data.synth.sample import (
    ImageSearchEntry,
    SynthError,
    TaskSample,
    ToolStep,
)
from deepeyes.data.synth.tasks.context import TaskContext
from deepeyes.data.synth.world import Landmark

SIZE = 320
THUMBNAIL = 96
RESULTS = 5


def render_landmark(landmark: Landmark, size: int = SIZE) -> Image.Image:
    """A stylised building whose shape and colours follow from the landmark's drawing seed."""
    rng = random.Random(landmark.drawing_seed)
    sky = (rng.randint(90, 200), rng.randint(150, 220), rng.randint(200, 255))
    image, draw = new_canvas(SIZE, SIZE, sky)
    ground = (rng.randint(60, 140), rng.randint(120, 180), rng.randint(40, 90))
    horizon = rng.randint(230, 260)
    draw.rectangle([0, horizon, SIZE, SIZE], fill=ground)
    sun = rng.randint(30, 290), rng.randint(25, 70)
    draw.ellipse([sun[0] - 18, sun[1] - 18, sun[0] + 18, sun[1] + 18], fill=(250, 220, 90))
    wall = (rng.randint(120, 230), rng.randint(90, 200), rng.randint(70, 190))
    roof = (rng.randint(20, 200), rng.randint(20, 120), rng.randint(20, 200))
    towers = rng.randint(1, 3)
    base_width = rng.randint(120, 220)
    x0 = (SIZE - base_width) // 2
    draw.rectangle([x0, horizon - rng.randint(50, 90), x0 + base_width, horizon], fill=wall)
    for i in range(towers):
        width = rng.randint(26, 46)
        cx = x0 + (i + 1) * base_width // (towers + 1)
        top = rng.randint(90, 150)
        draw.rectangle([cx - width // 2, top, cx + width // 2, horizon], fill=wall, outline=roof)
        cap = rng.choice(["spire", "dome", "flat"])
        if cap == "spire":
            draw.polygon([(cx - width // 2 - 4, top), (cx + width // 2 + 4, top), (cx, top - rng.randint(30, 70))], fill=roof)
        elif cap == "dome":
            draw.pieslice(
                [cx - width // 2 - 6, top - width // 2 - 6, cx + width // 2 + 6, top + width // 2 + 6], 180, 360, fill=roof
            )
        else:
            draw.rectangle([cx - width // 2 - 4, top - 10, cx + width // 2 + 4, top], fill=roof)
        for row in range(top + 12, horizon - 20, 22):
            draw.rectangle([cx - 5, row, cx + 5, row + 10], fill=(40, 40, 60))
    door = rng.randint(14, 26)
    draw.rectangle([SIZE // 2 - door // 2, horizon - door * 2, SIZE // 2 + door // 2, horizon], fill=roof)
    return image if size == SIZE else image.resize((size, size), Image.LANCZOS)


def title_up_to(title: str, answer: str) -> str:
    """The title quoted up to and including the answer, which is then its last word.

    Why not the whole title: after a whole title the SFT model had to pick the city or the
    name out of it and often picked the other one; quoted up to the answer, the question
    decides only where the quote stops, and the answer is the words just written.

    Raises:
        SynthError: the answer is not in the title.
    """
    end = title.find(answer)
    if end < 0:
        raise SynthError(f"answer {answer!r} not in the title {title!r}")
    return title[: end + len(answer)]


def build(rng: random.Random, context: TaskContext) -> TaskSample:
    landmark = context.landmark
    if landmark is None:
        raise SynthError("image_search needs a landmark in its context")
    others = rng.sample([other for other in context.landmarks if other != landmark], RESULTS - 1)
    gold_rank = 0
    pages = [landmark] + others
    titles = [rng.choice(page.titles) for page in pages]
    entry = ImageSearchEntry(
        titles=titles,
        thumbnails=[render_landmark(page, THUMBNAIL) for page in pages],
        gold_title=titles[gold_rank],
    )
    ask_city = rng.random() < 0.5
    if ask_city:
        question, answer = (
            rng.choice(["In which city is the landmark shown in this image?", "Which city is this building in?"]),
            landmark.city,
        )
    else:
        question, answer = (
            rng.choice(["What is the name of the landmark in this picture?", "What is this building called?"]),
            landmark.name,
        )
    # The first thought says what is asked, next to the question: the last thought's "So the
    # <what> is" and where its quote stops then follow the model's own words, where asked only
    # in the question the SFT model answered a name for 5 of 6 city questions.
    what = "city" if ask_city else "name"
    step = ToolStep(
        tool="image_search",
        thought=(
            f"The question asks for the {what} of the building in the picture, but nothing in the image names it "
            "and I do not recognise it. An image search on the picture should find pages about it."
        ),
        input="",
    )
    return TaskSample(
        task="image_search",
        question=question,
        answer=answer,
        image=render_landmark(landmark),
        steps=[step],
        final_thought=lambda _obs: (
            f"The top result shows the same building as my image, and its title reads "
            f"'{title_up_to(titles[gold_rank], answer)}'. So the {what} is {answer}."
        ),
        distractors=[page.city if ask_city else page.name for page in others][:3],
        image_search=entry,
    )
