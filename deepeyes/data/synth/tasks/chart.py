"""Read values off a bar or line chart and compute with them.

The values are not printed on the chart: the code calibrates the y axis from the grey
gridline rows and the tick labels the model read, then measures bar tops (or marker
centres) in pixels. The gridline spacing is an integer number of pixels per unit, so
rounding recovers the exact integer values.
"""

from __future__ import annotations

import random

from PIL import Image

from deepeyes.data.synth.drawing import INK, PALETTE, RGB, font, new_canvas, text_size
from deepeyes.data.synth.sample import TaskSample, ToolStep, numeric_distractors
from deepeyes.data.synth.tasks.context import TaskContext

WIDTH, HEIGHT = 400, 320
LEFT, RIGHT, TOP, BOTTOM = 50, 385, 40, 280  # plot area; BOTTOM is the zero gridline row
GRID = (180, 180, 180)
LINE = (160, 190, 240)

TOPICS = [
    ("Monthly rainfall (mm)", ["Jan", "Feb", "Mar", "Apr", "May", "Jun"]),
    ("Books read per class", ["A", "B", "C", "D", "E", "F"]),
    ("Bikes sold per store", ["North", "South", "East", "West", "Port", "Hill"]),
    ("Visitors per day", ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]),
    ("Trees planted per team", ["Oak", "Elm", "Ash", "Fir", "Yew", "Bay"]),
]
#: (axis maximum, tick step); 240 px / maximum is a whole number of pixels per unit.
SCALES = [(40, 10), (60, 10), (80, 20), (120, 20)]


def _render(
    title: str, labels: list[str], values: list[int], maximum: int, step: int, style: str, color: RGB
) -> tuple[Image.Image, list[int]]:
    image, draw = new_canvas(WIDTH, HEIGHT)
    unit = (BOTTOM - TOP) // maximum
    ticks = list(range(0, maximum + 1, step))
    for tick in ticks:
        row = BOTTOM - tick * unit
        draw.line([(LEFT, row), (RIGHT, row)], fill=GRID, width=1)
        width, height = text_size(str(tick), 11)
        draw.text((LEFT - 6 - width, row - height // 2 - 2), str(tick), fill=INK, font=font(11))
    draw.line([(LEFT - 1, TOP - 5), (LEFT - 1, BOTTOM)], fill=INK, width=1)
    title_width, _ = text_size(title, 14)
    draw.text(((WIDTH - title_width) // 2, 10), title, fill=INK, font=font(14))
    slot = (RIGHT - LEFT) // len(labels)
    centers = [LEFT + slot * i + slot // 2 for i in range(len(labels))]
    tops = [BOTTOM - value * unit for value in values]
    if style == "bar":
        half = min(16, slot // 3)
        for center, top in zip(centers, tops):
            draw.rectangle([center - half, top, center + half, BOTTOM], fill=color)
    else:
        draw.line(list(zip(centers, tops)), fill=LINE, width=2)
        for center, top in zip(centers, tops):
            draw.ellipse([center - 4, top - 4, center + 4, top + 4], fill=color)
    for center, label in zip(centers, labels):
        width, _ = text_size(label, 11)
        draw.text((center - width // 2, BOTTOM + 6), label, fill=INK, font=font(11))
    return image, ticks


def _code(style: str, ticks: list[int], labels: list[str], color: RGB, computation: str) -> str:
    header = [
        "import numpy as np",
        "",
        "pixels = np.asarray(image_1, dtype=np.int16)",
        f"ticks = {ticks}  # y-axis labels, bottom to top",
        f"labels = {labels}  # x-axis labels, left to right",
        f"grid = np.abs(pixels - {list(GRID)}).max(axis=-1) <= 10",
        "rows = np.flatnonzero(grid.sum(axis=1) > 100)[::-1]  # gridline rows, bottom to top",
        "unit = (rows[0] - rows[-1]) / (ticks[-1] - ticks[0])  # pixels per unit",
        f"ink = np.abs(pixels - np.array({list(color)})).max(axis=-1) < 40",
    ]
    if style == "bar":
        measure = [
            "columns = np.flatnonzero(ink.any(axis=0))",
            "bars = np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1)",
            "values = {}",
            "for label, bar in zip(labels, bars):",
            "    top = np.flatnonzero(ink[:, bar].any(axis=1))[0]",
            "    values[label] = int(round((rows[0] - top) / unit)) + ticks[0]",
        ]
    else:
        measure = [
            "from scipy import ndimage",
            "",
            "markers, found = ndimage.label(ink)",
            "centres = sorted(ndimage.center_of_mass(ink, markers, range(1, found + 1)), key=lambda c: c[1])",
            "values = {label: int(round((rows[0] - y) / unit)) + ticks[0] for label, (y, x) in zip(labels, centres)}",
        ]
    return "\n".join(header + measure + ["print(values)", computation])


def build(rng: random.Random, context: TaskContext) -> TaskSample:
    title, all_labels = rng.choice(TOPICS)
    labels = all_labels[: rng.randint(4, 6)]
    maximum, step = rng.choice(SCALES)
    values = [rng.randint(maximum // 10, maximum) for _ in labels]
    while len(set(values)) < len(values):  # distinct values keep "highest"/"lowest" unambiguous
        values = [rng.randint(maximum // 10, maximum) for _ in labels]
    style = rng.choice(["bar", "line"])
    color_name = rng.choice(["blue", "red", "green", "purple"])
    color = PALETTE[color_name]
    image, ticks = _render(title, labels, values, maximum, step, style, color)
    reading = dict(zip(labels, values))

    kind = rng.choice(["range", "sum", "difference", "total"])
    a, b = rng.sample(labels, 2)
    if reading[a] < reading[b]:
        a, b = b, a
    if kind == "range":
        question = "What is the difference between the highest and the lowest value in the chart?"
        computation, result = "print(max(values.values()) - min(values.values()))", max(values) - min(values)
    elif kind == "sum":
        question = f"What is the sum of the values for {a} and {b}?"
        computation, result = f"print(values[{a!r}] + values[{b!r}])", reading[a] + reading[b]
    elif kind == "difference":
        question = f"By how much is the value for {a} larger than the value for {b}?"
        computation, result = f"print(values[{a!r}] - values[{b!r}])", reading[a] - reading[b]
    else:
        question = "What is the total of all the values shown in the chart?"
        computation, result = "print(sum(values.values()))", sum(values)
    shape = "bars" if style == "bar" else "line markers"
    tool_step = ToolStep(
        tool="code_execution",
        thought=(
            f"This is a {style} chart titled '{title}' with no values printed on it. The y axis is labelled "
            f"{', '.join(map(str, ticks))} and the categories are {', '.join(labels)}. I will measure the {color_name} "
            f"{shape} in pixels against the gridlines to get each value, then compute the answer."
        ),
        input=_code(style, ticks, labels, color, computation),
        expected_stdout=f"{reading}\n{result}\n",
    )
    return TaskSample(
        task="chart",
        question=question,
        answer=str(result),
        image=image,
        steps=[tool_step],
        final_thought=lambda _obs: (
            f"Measured from the pixels, the values are {', '.join(f'{k} = {v}' for k, v in reading.items())}, "
            f"so the answer is {result}."
        ),
        distractors=numeric_distractors(result, (step // 2, -(step // 2), step, 2 * step)),
    )
