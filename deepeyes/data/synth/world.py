"""The fictional world behind the search tasks: entities, landmarks and the text corpus.

Names are built from random syllables so that no pretrained model can know the facts:
the only way to answer is to search the bundled corpus (entities) or the image-search
cache (landmarks). Each entity *family* shares a made-up root word between the asked
entity, a namesake of another kind and a news item, so retrieval has to read the whole
name rather than match one rare token.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

ONSETS = ["b", "br", "d", "dr", "f", "g", "gr", "k", "kr", "l", "m", "n", "p", "qu", "r", "s", "st", "t", "th", "v", "z"]
VOWELS = ["a", "e", "i", "o", "u", "ae", "ei", "ou"]
CODAS = ["", "", "n", "r", "s", "th", "l", "x", "nd", "sk"]

KINDS = {
    # kind: (descriptor, verb for the start year, role of the person)
    "Observatory": ("an astronomical observatory", "founded", "founder"),
    "Bridge": ("a suspension bridge", "opened", "chief engineer"),
    "Library": ("a public library", "founded", "first librarian"),
    "Brewery": ("an independent brewery", "founded", "founder"),
    "Museum": ("a museum of natural history", "opened", "first curator"),
    "Lighthouse": ("a coastal lighthouse", "lit", "first keeper"),
}
ATTRIBUTES = ("year", "city", "person", "measure")
MEASURES = {
    "Observatory": ("telescope aperture", "centimetres"),
    "Bridge": ("main span", "metres"),
    "Library": ("collection", "thousand volumes"),
    "Brewery": ("annual output", "thousand litres"),
    "Museum": ("exhibition floor", "hundred square metres"),
    "Lighthouse": ("tower height", "metres"),
}


@dataclass(frozen=True)
class Entity:
    name: str
    kind: str
    city: str
    year: int
    person: str
    measure: int

    @property
    def link(self) -> str:
        return f"https://fictopedia.example/wiki/{self.name.replace(' ', '_')}"

    def fact(self, attribute: str) -> str:
        return {"year": str(self.year), "city": self.city, "person": self.person, "measure": str(self.measure)}[attribute]


@dataclass(frozen=True)
class Landmark:
    name: str
    city: str
    #: Seed of the procedural drawing, so the picture and its thumbnails always match.
    drawing_seed: int

    @property
    def titles(self) -> list[str]:
        return [
            f"{self.name} - the famous landmark of {self.city} | Travel guide",
            f"Visiting {self.name} in {self.city}: tickets and opening hours",
            f"{self.name} ({self.city}) - Fictopedia",
        ]


@dataclass
class Document:
    title: str
    link: str
    text: str
    date: str

    def as_row(self) -> dict:
        return {"title": self.title, "link": self.link, "text": self.text, "date": self.date}


@dataclass
class World:
    entities: list[Entity]
    landmarks: list[Landmark]
    documents: list[Document] = field(default_factory=list)


class NameMaker:
    """Unique made-up words from one random generator."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[str] = set()

    def word(self, syllables: tuple[int, int] = (2, 3)) -> str:
        while True:
            parts = [
                self._rng.choice(ONSETS) + self._rng.choice(VOWELS) + self._rng.choice(CODAS)
                for _ in range(self._rng.randint(*syllables))
            ]
            word = "".join(parts).capitalize()
            if 5 <= len(word) <= 11 and word not in self._used:
                self._used.add(word)
                return word

    def person(self) -> str:
        return f"{self.word((1, 2))} {self.word((2, 3))}"


def _date(rng: random.Random) -> str:
    return f"{rng.randint(2015, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _article(entity: Entity, rng: random.Random) -> Document:
    descriptor, verb, role = KINDS[entity.kind]
    measure_name, unit = MEASURES[entity.kind]
    text = (
        f"{entity.name} is {descriptor} in the city of {entity.city}. "
        f"It was {verb} in {entity.year}; its {role} was {entity.person}. "
        f"The {measure_name} of {entity.name} is {entity.measure} {unit}."
    )
    return Document(title=entity.name, link=entity.link, text=text, date=_date(rng))


def _news(entity: Entity, names: NameMaker, rng: random.Random) -> Document:
    """A news item naming the entity without stating any fact a question asks about."""
    event = rng.choice(["a winter lecture series", "a charity fun run", "a photography contest", "a night market"])
    host = names.person()
    text = (
        f"Residents of {entity.city} gathered at {entity.name} for {event} organised by {host}. "
        f"Organisers said the event at {entity.name} drew a record crowd and will return next season."
    )
    slug = entity.name.lower().replace(" ", "-")
    return Document(
        title=f"{entity.name} hosts {event}",
        link=f"https://{entity.city.lower()}-herald.example/news/{slug}-{rng.randint(100, 999)}",
        text=text,
        date=_date(rng),
    )


def build_world(rng: random.Random, entity_count: int, landmark_count: int) -> World:
    """Entities (each with a namesake and a news item in the corpus) and landmarks."""
    names = NameMaker(rng)
    cities = [names.word() for _ in range(40)]
    kinds = sorted(KINDS)
    entities: list[Entity] = []
    documents: list[Document] = []
    for _ in range(entity_count):
        root = names.word()
        kind, namesake_kind = rng.sample(kinds, 2)
        family = [
            Entity(f"{root} {k}", k, rng.choice(cities), rng.randint(1820, 1990), names.person(), rng.randint(12, 480))
            for k in (kind, namesake_kind)
        ]
        entities.append(family[0])
        documents += [_article(family[0], rng), _article(family[1], rng), _news(family[0], names, rng)]
    landmark_kinds = ["Spire", "Gate", "Arch", "Pagoda", "Dome", "Clocktower", "Obelisk", "Citadel"]
    landmarks = [
        Landmark(f"{names.word()} {rng.choice(landmark_kinds)}", rng.choice(cities), rng.randrange(2**31))
        for _ in range(landmark_count)
    ]
    return World(entities=entities, landmarks=landmarks, documents=documents)
