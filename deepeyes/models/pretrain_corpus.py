"""The synthetic instruction corpus the tiny base is pretrained on.

Why a corpus of its own: a pretrained instruct model brings skills the tiny random model
lacks and that SFT cannot teach in a few CPU minutes — above all, *copying* a span (a number,
a word, a name) from the user turn into its reply and into another template. Without it the
SFT model picks the right tool but fills the call with memorised operands (docs/cold_start.md).
So this corpus teaches exactly those generic skills, in the chat template:

- repeating a span, and reordering several spans;
- copying values into other templates (a JSON object, a keyword call, a list, a sentence);
- reading one value out of a block of text or a key/value record;
- picking the k-th item of a list, and the label of an item;
- finding a value in an earlier turn of a multi-turn conversation (a request, then a reply
  that carries the value, then a reply that uses it), above all in the latest turn.

What it must not contain (so the base stays a *base*, and SFT and RL have something to teach;
checked by ``tests/models/test_pretrain.py``): the evaluation task families and their question
templates, the wire-format tags (``<think>``, ``<code>``, ``<tool_call>``, ``<answer>``, …) and
any evaluation value. Words come from :data:`WORDS` or are coined, made-up names and coined
words hold a letter the synthetic world's names never use (:data:`MARK_LETTERS`), and numbers
are uniform random digit strings.

A sample is a list of ``{"role", "content"}`` messages; a user turn may start with one image
(:data:`IMAGE` marks it), a random noise picture, so that the base has seen vision tokens
before the question as every SFT sample has them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass

#: Marks "an image goes here" at the start of a user turn (rendered as vision tokens).
IMAGE = "<image>"

#: Generic vocabulary. Deliberately without the colour names, shape names and answer words of
#: the synthetic evaluation tasks (a test checks the lists stay disjoint).
WORDS: tuple[str, ...] = tuple(
    """
    acorn arrow attic autumn badge bamboo beacon beetle biscuit blanket blossom bonnet bottle
    branch bread breeze brick bucket button cabbage cabin camel canvas carpet carrot castle
    cedar cellar chalk chapter cherry cliff cloud clover cobweb coffee compass cookie corner
    cotton crayon crystal curtain daisy desert diary dolphin donkey drawer dune eagle feather
    fence ferry fiddle fig flannel fountain garlic ginger glove granite gravel hammock harvest
    hazel hedge helmet honey igloo ivory jelly jungle kayak kitten kiwi lagoon lemon lemonade
    letter lizard llama lobster mango maple mitten monkey moss mountain mushroom nickel noodle
    nutmeg oak oatmeal ocean olive onion orbit otter paddle pancake panda peanut pebble pelican
    pine pirate planet plum pocket poppy pudding pumpkin puzzle radio raisin raven reef ribbon
    salmon sandal saucer scarf season shadow shelf shovel singer sketch snail sofa sparrow
    spider sponge spoon squirrel stable station straw sugar summer sunset tablet teapot ticket
    tiger timber tower trumpet tulip turtle umbrella vase velvet village wagon walnut walrus
    whistle winter wizard wool yarn yogurt zebra
    """.split()
)

#: Everyday English a pretrained model has read countless times: arithmetic words, places,
#: times, buildings, pictures and the words questions are asked in. Without them the question
#: words that decide a tool call (``plus``, ``city``, ``landmark``, ``called`` …) reached SFT
#: as never-trained embeddings, and the SFT model ignored them: it wrote ``*`` for "plus" and
#: searched for the founder when asked for the city (docs/pretrain.md). Single words only;
#: the evaluation's values (colour, shape and answer words) stay out, and so do its question
#: templates (both checked by ``tests/models/test_pretrain.py``).
COMMON_WORDS: tuple[str, ...] = tuple(
    """
    about above across after again against along also always among answer area around away
    back before begin behind below between big bottom build building built call called card
    centre chief city clear close count country curator day different distance door down
    early east edge engineer every exact far few field find first floor follow founded founder
    front full give good great ground half hall height high hold hour house image inside keep
    keeper kind large last late left less librarian light line lit little locate long look
    lower main make many map mark measure metre metres middle minus minute month more most
    much name narrow near new next north number often old only open opened other outside page
    part past people photo picture place plus point quote quotes read reply right road round
    row same second see shown side sign small south start state step street table tall tell
    than there third time times title top total town under upper view visit wall way week
    west where which whole wide word write written year young
    the a an is are was were be this that these with of in on at to for from by and or
    can you we they it its how what who why when
    landmark password shapes hundred thousand collection exhibition span telescope aperture
    centimetres volumes annual output litres
    """.split()
)

#: Syllables of made-up names and coined words. Every letter piece a name can be made of is
#: here, the synthetic world's onsets (``b br d dr …``) included: a token the base never
#: *writes* in pretraining is one it cannot copy later (the unembedding of a token that is
#: never a target is only ever pushed down), so a base whose names avoided the world's
#: initials could not copy ``Broxkisk`` out of a search result at all (0 % on such names,
#: docs/pretrain.md). Disjointness from the world's values is kept by a letter instead:
#: every made-up name and coined word contains one of :data:`MARK_LETTERS`, which the
#: world's syllables (``deepeyes.data.synth.world``) never use.
NAME_ONSETS: tuple[str, ...] = (
    "b", "br", "d", "dr", "f", "g", "gr", "k", "kr", "l", "m", "n", "p", "qu", "r", "s", "st", "t", "th", "v", "z",
    "c", "ch", "h", "j", "w", "wh", "y", "x", "cl", "chr", "pl", "sl", "sp", "tr", "", "",
)
NAME_VOWELS: tuple[str, ...] = ("a", "e", "i", "o", "u", "ae", "ei", "ou", "ia", "io", "ea", "y")
NAME_CODAS: tuple[str, ...] = ("", "", "n", "r", "s", "th", "l", "x", "nd", "sk", "m", "sh", "ck", "ft", "mp", "w")
#: Letters the synthetic world's names never contain; each made-up name has at least one.
MARK_LETTERS = "cjwy"
MARK_ONSETS: tuple[str, ...] = ("c", "ch", "j", "w", "wh", "y", "cl", "chr")

#: Attribute names of the made-up records (generic; none is an evaluation question's).
ATTRIBUTES: tuple[str, ...] = (
    "owner", "colour code", "weight", "price", "code", "room", "mood", "pet", "vehicle", "hobby",
    "floor", "serial", "batch", "rank", "label", "tag", "width", "depth", "score", "level",
    "city", "year", "country", "street", "author", "builder", "height", "title",
)
NUMERIC_ATTRIBUTES = frozenset({"weight", "price", "code", "room", "floor", "serial", "batch", "rank", "width", "depth", "score", "level", "year", "height"})

GENERIC_SYSTEM_SENTENCES: tuple[str, ...] = (
    "You are a helpful assistant.",
    "Follow the user's instructions exactly.",
    "Keep replies short and precise.",
    "Copy names and numbers exactly as the user wrote them.",
    "When the user asks for one value, reply with that value only.",
    "Do not add explanations unless the user asks for them.",
    "Read the whole message before replying.",
    "If a message contains a list, count its items carefully.",
    "Values may be words, names or numbers of any length.",
    "Reply in the format the user asks for.",
    "The user may show a picture; the text of the message says what to do.",
    "Be careful with long numbers: every digit matters.",
    "Names are case sensitive.",
    "Answer in English.",
)

ORDINALS: tuple[str, ...] = ("first", "second", "third", "fourth", "fifth", "sixth")


@dataclass(frozen=True)
class CorpusSample:
    """One conversation: messages, and whether its first user turn shows an image."""

    messages: list[dict[str, str]]
    family: str


class ValueMaker:
    """Random words, made-up names and digit strings from one generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def number(self) -> str:
        """A digit string of 1–5 digits, negative one time in ten (answers can be negative)."""
        digits = self.rng.choice((1, 2, 2, 2, 3, 3, 3, 4, 4, 5))
        value = str(self.rng.randrange(10 ** (digits - 1) if digits > 1 else 0, 10**digits))
        return f"-{value}" if value != "0" and self.rng.random() < 0.1 else value

    def word(self) -> str:
        """A word of :data:`WORDS` or :data:`COMMON_WORDS`, or (one time in three) a coined
        lowercase word."""
        draw = self.rng.random()
        return self.coined() if draw < 1 / 3 else self.rng.choice(COMMON_WORDS) if draw < 1 / 2 else self.rng.choice(WORDS)

    def coined(self) -> str:
        """1–3 random syllables holding at least one of :data:`MARK_LETTERS` (lowercase)."""
        syllables = [self.rng.choice(NAME_ONSETS) + self.rng.choice(NAME_VOWELS) for _ in range(self.rng.randint(1, 3))]
        if not any(letter in "".join(syllables) for letter in MARK_LETTERS):
            syllables[self.rng.randrange(len(syllables))] = self.rng.choice(MARK_ONSETS) + self.rng.choice(NAME_VOWELS)
        return "".join(syllables) + self.rng.choice(NAME_CODAS)

    def name(self) -> str:
        """A made-up capitalised name (1–3 syllables, at least two letters long)."""
        name = self.coined()
        while len(name) < 2:
            name = self.coined()
        return name.capitalize()

    def full_name(self) -> str:
        return self.name() if self.rng.random() < 0.6 else f"{self.name()} {self.name()}"

    def value(self) -> str:
        kind = self.rng.random()
        return self.number() if kind < 0.4 else self.word() if kind < 0.7 else self.full_name()

    def distinct(self, count: int, make: Callable[[], str] | None = None) -> list[str]:
        make = make or self.value
        values: list[str] = []
        while len(values) < count:
            candidate = make()
            if candidate not in values:
                values.append(candidate)
        return values


# --- families -------------------------------------------------------------------------------
# Each returns (user text, assistant text) or a whole message list for multi-turn families.


def _copy(v: ValueMaker) -> list[dict[str, str]]:
    """The plainest copy: a run of values, written back. Drawn most often, because copying is
    the skill every other family builds on and a tiny model learns it from repetition (the
    same model copies digit runs after ~200 steps of this alone, while the mixture without it
    had not started to copy after 250)."""
    values = v.distinct(v.rng.randint(3, 12), v.number if v.rng.random() < 0.4 else v.value)
    joined = " ".join(values)
    return _turn(v.rng.choice((f"Copy: {joined}", f"Copy this: {joined}", f"Write back: {joined}")), joined)


def _digit_copy(v: ValueMaker) -> list[dict[str, str]]:
    """A run of digit strings written back after ``Copy:``. Qwen's tokenizer splits numbers
    into single digits, so each digit is one copy target: the plainest signal there is, from
    which a tiny model forms copying (induction heads) within a few hundred steps, while copy
    runs of words and made-up names had not started to copy after 400 steps
    (docs/pretrain.md). It opens every run (``--copy_warmup_steps``) and stays in the mixture."""
    joined = " ".join(v.number() for _ in range(v.rng.randint(2, 8)))
    return _turn(f"Copy: {joined}", joined)


def _word_copy(v: ValueMaker) -> list[dict[str, str]]:
    """A run of everyday words written back: every :data:`COMMON_WORDS` entry is read and
    written a few hundred times in a run, where drawn only as one value among others it came
    up a handful of times."""
    words = [v.rng.choice(COMMON_WORDS) if v.rng.random() < 0.8 else v.word() for _ in range(v.rng.randint(4, 12))]
    joined = " ".join(words)
    return _turn(v.rng.choice((f"Copy: {joined}", f"Repeat these words: {joined}", f"Write back: {joined}")), joined)


def _repeat(v: ValueMaker) -> list[dict[str, str]]:
    spans = v.distinct(v.rng.randint(1, 6))
    joined = " ".join(spans)
    user = v.rng.choice(
        (
            f"Repeat exactly: {joined}",
            f"Say {joined} and nothing else.",
            f"Please write back this text: {joined}",
            f"Echo the following. {joined}",
            f"Copy this: {joined}",
        )
    )
    return _turn(user, joined)


def _reorder(v: ValueMaker) -> list[dict[str, str]]:
    a, b = v.distinct(2)
    if v.rng.random() < 0.5:
        return _turn(f"Write {b} first and then {a}, separated by a comma.", f"{b}, {a}")
    return _turn(f"I give you two values: {a} and {b}. Write them in reverse order.", f"{b} {a}")


def _to_json(v: ValueMaker) -> list[dict[str, str]]:
    keys = v.rng.sample(("name", "value", "item", "place", "id", "text", "target", "key"), v.rng.randint(1, 3))
    values = v.distinct(len(keys))
    described = ", ".join(f"{k} is {val}" for k, val in zip(keys, values))
    user = v.rng.choice(
        (
            f"Make a JSON object where {described}.",
            f"Write as JSON: {described}.",
            f"Encode this in JSON with the same keys: {described}.",
        )
    )
    return _turn(user, json.dumps(dict(zip(keys, values))))


def _to_call(v: ValueMaker) -> list[dict[str, str]]:
    function = v.rng.choice(("lookup", "show", "store", "send", "make", "find", "open", "keep", "draw", "join"))
    args = v.distinct(v.rng.randint(1, 3), v.number if v.rng.random() < 0.5 else v.value)
    rendered = ", ".join(_literal(a) for a in args)
    listed = " and ".join(args)
    user = v.rng.choice(
        (
            f"Call the function {function} with {listed}.",
            f"Write a call of {function} whose arguments are {listed}, in this order.",
            f"Use {function} on {listed}.",
        )
    )
    return _turn(user, f"{function}({rendered})")


def _to_list(v: ValueMaker) -> list[dict[str, str]]:
    items = v.distinct(v.rng.randint(2, 5), v.number if v.rng.random() < 0.5 else v.value)
    spoken = ", ".join(items[:-1]) + f" and {items[-1]}"
    rendered = "[" + ", ".join(_literal(i) for i in items) + "]"
    return _turn(v.rng.choice((f"Put {spoken} in a list.", f"Make a list of {spoken}.")), rendered)


def _to_sentence(v: ValueMaker) -> list[dict[str, str]]:
    person, place, count = v.full_name(), v.name(), v.number()
    thing = v.word()
    form = v.rng.randrange(3)
    if form == 0:
        user = f"Write one sentence saying that {person} lives in {place}."
        return _turn(user, f"{person} lives in {place}.")
    if form == 1:
        user = f"person: {person}\ncount: {count}\nthing: {thing}\nTurn these fields into a sentence."
        return _turn(user, f"{person} has {count} of the {thing}.")
    user = f"Complete the sentence with {count}: The {thing} costs ... coins."
    return _turn(user, f"The {thing} costs {count} coins.")


def _record(v: ValueMaker) -> tuple[str, str, str]:
    """A made-up record as text, one attribute asked, its value."""
    subject = v.full_name()
    attributes = v.rng.sample(ATTRIBUTES, v.rng.randint(3, 6))
    values = [v.number() if a in NUMERIC_ATTRIBUTES else v.value() for a in attributes]
    if v.rng.random() < 0.5:
        text = f"Record of {subject}\n" + "\n".join(f"{a}: {val}" for a, val in zip(attributes, values))
    else:
        text = f"{subject} is listed here. " + " ".join(
            f"The {a} of {subject} is {val}." for a, val in zip(attributes, values)
        )
    index = v.rng.randrange(len(attributes))
    return text, attributes[index], values[index]


def _read_value(v: ValueMaker) -> list[dict[str, str]]:
    text, attribute, value = _record(v)
    question = v.rng.choice(
        (f"What is the {attribute}?", f"Which {attribute} does the text give?", f"Give me the {attribute} only.")
    )
    return _turn(f"{text}\n\n{question}", value)


def _kth_item(v: ValueMaker) -> list[dict[str, str]]:
    items = v.distinct(v.rng.randint(3, 6))
    k = v.rng.randrange(len(items))
    which = "last" if k == len(items) - 1 and v.rng.random() < 0.5 else ORDINALS[k]
    separator = v.rng.choice((", ", "; ", " | ", "\n"))
    user = v.rng.choice(
        (
            f"Items: {separator.join(items)}\nWhat is the {which} item?",
            f"Here is a list.\n{separator.join(items)}\nReply with its {which} entry.",
        )
    )
    return _turn(user, items[k])


def _label_of(v: ValueMaker) -> list[dict[str, str]]:
    items = v.distinct(v.rng.randint(2, 5))
    style = v.rng.randrange(3)
    labels = [str(i + 1) for i in range(len(items))] if style == 0 else list("wxyz"[: len(items)]) if len(items) <= 4 else [str(i + 1) for i in range(len(items))]
    if style == 2 and len(items) <= 4:
        labels = ["north", "east", "south", "west"][: len(items)]
    listing = " ".join(f"({label}) {item}" for label, item in zip(labels, items))
    k = v.rng.randrange(len(items))
    if v.rng.random() < 0.5:
        return _turn(f"{listing}\nWhich label does {items[k]} have?", labels[k])
    return _turn(f"{listing}\nWhat is under label {labels[k]}?", items[k])


def _relay(v: ValueMaker) -> list[dict[str, str]]:
    """Ask for a value, receive a message that carries it, then use it: the shape of a turn
    that reads an earlier reply, without any tool or tag."""
    text, attribute, value = _record(v)
    key = v.name()
    first = f"I will send you a note about {key}. Ask me for it."
    request = v.rng.choice((f"Please send the note about {key}.", f"Send me the note on {key}, please."))
    note = f"Note {key}:\n{text}"
    question = v.rng.choice((f"Now tell me the {attribute}.", f"So what is the {attribute}?"))
    closing = v.rng.choice((value, f"The {attribute} is {value}."))
    return [
        {"role": "user", "content": first},
        {"role": "assistant", "content": request},
        {"role": "user", "content": f"{note}\n\n{question}"},
        {"role": "assistant", "content": closing},
    ]


def _reply_value(v: ValueMaker) -> list[dict[str, str]]:
    """Ask for one value, get a reply that carries it (alone, in a sentence or on a labelled
    line among others), then state it: copying out of the *latest* user turn into the answer,
    the step every tool-using reply ends with, without any tool or tag."""
    subject, attribute = v.full_name(), v.rng.choice(ATTRIBUTES)
    value = v.number() if attribute in NUMERIC_ATTRIBUTES or v.rng.random() < 0.3 else v.value()
    ask = v.rng.choice((f"What is the {attribute} of {subject}?", f"Please tell me the {attribute} of {subject}."))
    form = v.rng.randrange(3)
    if form == 0:
        reply = value
    elif form == 1:
        reply = f"The {attribute} of {subject} is {value}."
    else:
        others = [a for a in v.rng.sample(ATTRIBUTES, 3) if a != attribute][:2]
        lines = [f"{a}: {v.value()}" for a in others] + [f"{attribute}: {value}"]
        v.rng.shuffle(lines)
        reply = "Here are the fields.\n" + "\n".join(lines)
    closing = v.rng.choice((value, f"The {attribute} is {value}.", f"{subject}: {value}"))
    return [
        {"role": "user", "content": f"Ask me for the {attribute} of {subject}, then tell me what I said."},
        {"role": "assistant", "content": ask},
        {"role": "user", "content": reply},
        {"role": "assistant", "content": closing},
    ]


def _recall(v: ValueMaker) -> list[dict[str, str]]:
    """A value from the first turn, asked for two turns later."""
    secret, other = v.distinct(2)
    return [
        {"role": "user", "content": f"Remember this value: {secret}. Reply with OK."},
        {"role": "assistant", "content": "OK."},
        {"role": "user", "content": f"Now also consider {other}. Which value did I ask you to remember?"},
        {"role": "assistant", "content": secret},
    ]


def _literal(value: str) -> str:
    """A value as a Python/JSON literal: numbers bare, everything else quoted."""
    return value if value.lstrip("-").isdigit() else json.dumps(value)


def _turn(user: str, assistant: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


FAMILIES: dict[str, Callable[[ValueMaker], list[dict[str, str]]]] = {
    "copy": _copy,
    "digit_copy": _digit_copy,
    "word_copy": _word_copy,
    "repeat": _repeat,
    "reorder": _reorder,
    "to_json": _to_json,
    "to_call": _to_call,
    "to_list": _to_list,
    "to_sentence": _to_sentence,
    "read_value": _read_value,
    "kth_item": _kth_item,
    "label_of": _label_of,
    "relay": _relay,
    "reply_value": _reply_value,
    "recall": _recall,
}


def system_prompt(rng: random.Random) -> str | None:
    """No system turn (the template adds Qwen's default), a few generic sentences, or (one in
    ten) a long one: SFT prompts start with a ~300-token system turn, so the base must copy
    across a long, irrelevant prefix too; most are short because every token costs CPU time."""
    if rng.random() < 0.5:
        return None
    if rng.random() < 0.2:  # as long as the tiny default's system prompt (~300 tokens)
        return " ".join(rng.sample(GENERIC_SYSTEM_SENTENCES, len(GENERIC_SYSTEM_SENTENCES)) * 2)
    return " ".join(rng.sample(GENERIC_SYSTEM_SENTENCES, rng.choice((1, 2, 3, 5))))


#: How often each family is drawn relative to the others (1 when not listed).
FAMILY_WEIGHTS: dict[str, int] = {"copy": 4, "digit_copy": 2, "word_copy": 4, "reply_value": 3}


def sample(rng: random.Random, image_share: float, family: str | None = None) -> CorpusSample:
    """One random conversation of ``family``, or of a family drawn by :data:`FAMILY_WEIGHTS`.

    Every family gets the same system turns and pictures, so that copying forms over the
    prefix lengths SFT prompts have (a ~300-token system turn and an image before the question).

    Raises:
        KeyError: ``family`` is not one of :data:`FAMILIES`.
    """
    names = sorted(FAMILIES)
    if family is None:
        family = rng.choices(names, weights=[FAMILY_WEIGHTS.get(name, 1) for name in names])[0]
    elif family not in FAMILIES:
        raise KeyError(f"unknown pretraining family {family!r}; known: {', '.join(names)}")
    messages = FAMILIES[family](ValueMaker(rng))
    if rng.random() < image_share:
        messages[0] = {"role": "user", "content": IMAGE + "\n" + messages[0]["content"]}
    system = system_prompt(rng)
    if system is not None:
        messages = [{"role": "system", "content": system}, *messages]
    return CorpusSample(messages=messages, family=family)
