"""Questions about a fictional entity whose name is on a sign; the facts are only in the corpus.

The model reads the name off the image, searches the local corpus and answers from the
result about exactly that entity (a namesake of another kind is also in the corpus).
"""

from __future__ import annotations

import random

from PIL import Image

from deepeyes.data.synth.drawing import INK, font, new_canvas, text_size
from deepeyes.data.synth.sample import (
    Observation,
    SynthError,
    TaskSample,
    TextSearchTarget,
    ToolStep,
)
from deepeyes.data.synth.tasks.context import TaskContext
from deepeyes.data.synth.world import ATTRIBUTES, KINDS, MEASURES, Entity

WIDTH, HEIGHT = 384, 256
PLAQUES = [((30, 70, 120), (240, 230, 200)), ((90, 30, 30), (250, 240, 220)), ((20, 80, 50), (235, 245, 235))]


#: Share of questions that name the entity only on the sign (the model must read it to search).
#: 0 in the curriculum: the search must be sufficient, and a model that cannot read pixels
#: could not form the query (issue 12). Raise it for models that can read.
SIGN_QUESTION_SHARE = 0.0


def question_and_query(entity: Entity, attribute: str, on_sign: bool) -> tuple[str, str]:
    """The question (naming the entity or pointing at the sign) and a query containing the name."""
    _, verb, role = KINDS[entity.kind]
    measure_name, unit = MEASURES[entity.kind]
    subject = f"the {entity.kind.lower()} named on this sign" if on_sign else entity.name
    if attribute == "year":
        return f"In which year was {subject} {verb}?", f"{entity.name} {verb} year"
    if attribute == "city":
        return f"In which city is {subject}?", f"{entity.name} city"
    if attribute == "person":
        return f"Who was the {role} of {subject}?", f"{entity.name} {role}"
    return f"What is the {measure_name} of {subject}, in {unit}?", f"{entity.name} {measure_name}"


def evidence(snippet: str, entity: Entity, attribute: str, answer: str) -> str:
    """The article's words up to and including the answer, quoted from where only this article
    reads that way: its opening ``<name> is …`` for the city, year and person, its ``The
    <measure> of <name> is …`` sentence for the measure.

    Why quote: a reply that names the answer straight after "It says the answer is" must find
    it in five results in one step, and the SFT model wrote a year for every question. Quoted
    from a start no other result shares, each next word is a copy of the word after the one
    just written, and the answer is the last word of the quote. The quote ends with a full
    stop even where the article's sentence goes on (the person follows the year after ";").

    Raises:
        SynthError: the snippet lacks the name, the measure's sentence or the answer.
    """
    measure_name, _ = MEASURES[entity.kind]
    start = snippet.find(f"The {measure_name} of {entity.name}") if attribute == "measure" else snippet.find(entity.name)
    end = snippet.find(answer, max(start, 0))
    if start < 0 or end < 0:
        raise SynthError(f"no quotable evidence for {attribute!r} in the snippet of {entity.link}")
    return snippet[start : end + len(answer)] + "."


def _sign(rng: random.Random, name: str) -> Image.Image:
    frame, paper = rng.choice(PLAQUES)
    image, draw = new_canvas(WIDTH, HEIGHT, (200, 210, 220))
    draw.rectangle([24, 48, WIDTH - 24, HEIGHT - 48], fill=frame)
    draw.rectangle([34, 58, WIDTH - 34, HEIGHT - 58], fill=paper)
    size = 28
    while text_size(name, size)[0] > WIDTH - 90:
        size -= 2
    width, height = text_size(name, size)
    left, top, _, _ = font(size).getbbox(name)
    draw.text(((WIDTH - width) // 2 - left, (HEIGHT - height) // 2 - top), name, fill=INK, font=font(size))
    return image


def build(rng: random.Random, context: TaskContext) -> TaskSample:
    entity = context.entity
    if entity is None:
        raise SynthError("text_search needs an entity in its context")
    attribute = rng.choice(ATTRIBUTES)
    on_sign = rng.random() < SIGN_QUESTION_SHARE
    question, query = question_and_query(entity, attribute, on_sign)
    answer = entity.fact(attribute)

    def final_thought(observations: list[Observation]) -> str:
        for rank, result in enumerate(observations[-1].results, start=1):
            if result.get("link") == entity.link:
                snippet = result.get("snippet", "")
                if answer not in snippet:
                    raise SynthError(f"answer {answer!r} missing from the snippet of {entity.link}")
                return (
                    f"Result {rank} is the article about {entity.name} itself (other results are about other "
                    f"places or only mention it). It says: {evidence(snippet, entity, attribute, answer)} "
                    f"So the answer is {answer}."
                )
        raise SynthError(f"gold document {entity.link} not in the search results for {query!r}")

    reading = f"The sign reads '{entity.name}'. " if on_sign else ""
    step = ToolStep(
        tool="text_search",
        thought=f"{reading}I do not know this fact about {entity.name}, so I will search for it.",
        input=query,
    )
    return TaskSample(
        task="text_search",
        question=question,
        answer=answer,
        image=_sign(rng, entity.name),
        steps=[step],
        final_thought=final_thought,
        text_search=TextSearchTarget(query=query, gold_link=entity.link),
    )
