"""The code-operation classifier against hand-labelled snippets."""

from __future__ import annotations

import pytest

from deepeyes.analysis.codeops import (
    CROP,
    ENHANCE,
    MEASURE,
    NUMERIC,
    OTHER,
    PLOT,
    SYNTAX_ERROR,
    classify,
)

CASES = [
    # (code, primary, all classes)
    ("from PIL import Image\nimg = Image.open('a.png')\nw, h = img.size\nimg.crop((w // 4, 0, w, h)).save('c.png')", CROP, {CROP}),
    ("import cv2\nimg = cv2.imread('a.png')\nbig = cv2.resize(img, None, fx=2, fy=2)", CROP, {CROP}),
    ("import numpy as np\na = np.zeros((10, 10))\npatch = a[2:5, 3:8]", CROP, {CROP}),
    ("from PIL import Image\nImage.open('a.png').rotate(90).save('r.png')", CROP, {CROP}),
    ("from PIL import Image, ImageEnhance\nimg = Image.open('a.png')\nImageEnhance.Contrast(img).enhance(2.0)", ENHANCE, {ENHANCE}),
    ("from PIL import Image, ImageFilter\nImage.open('a.png').filter(ImageFilter.SHARPEN)", ENHANCE, {ENHANCE}),
    ("from PIL import Image\ngrey = Image.open('a.png').convert('L')", ENHANCE, {ENHANCE}),
    ("from PIL import Image\nrgb = Image.open('a.png').convert('RGB')\nprint(rgb)", OTHER, {OTHER}),
    ("import matplotlib.pyplot as plt\nplt.plot([1, 2], [3, 4])\nplt.savefig('p.png')", PLOT, {PLOT}),
    ("from PIL import Image, ImageDraw\nimg = Image.open('a.png')\nImageDraw.Draw(img).rectangle((0, 0, 5, 5))", PLOT, {PLOT}),
    ("from PIL import Image\nimg = Image.open('a.png')\nprint(img.size, img.getpixel((3, 4)))", MEASURE, {MEASURE}),
    ("import numpy as np\nfrom PIL import Image\nmask = np.array(Image.open('a.png')) > 200\nprint(np.count_nonzero(mask))", MEASURE, {MEASURE}),
    ("items = ['a', 'b']\nprint(len(items))", MEASURE, {MEASURE}),
    ("from PIL import Image\nprint(Image.open('a.png').size)", MEASURE, {MEASURE}),
    ("values = [1, 2]\nprint(sum(values) / len(values))", NUMERIC, {NUMERIC}),  # len() serves the mean
    ("import cv2\ngrey = cv2.cvtColor(cv2.imread('a.png'), cv2.COLOR_BGR2GRAY)\nprint(len(cv2.findContours(grey, 0, 1)[0]))", MEASURE, {MEASURE, ENHANCE}),
    ("print((12.5 + 7.5) / 2)", NUMERIC, {NUMERIC}),
    ("import math\nprint(math.sqrt(2))", NUMERIC, {NUMERIC}),
    ("from math import sqrt as root\nprint(root(2))", NUMERIC, {NUMERIC}),
    ("import numpy as np\nprint(np.mean([1, 2, 3]))", NUMERIC, {NUMERIC}),
    ("total = 0\nfor x in range(3):\n    total += x", NUMERIC, {NUMERIC}),
    ("print('a' + 'b')\nname = f'{1}' + 'x'", OTHER, {OTHER}),
    ("with open('notes.txt') as handle:\n    print(handle.read())", OTHER, {OTHER}),
    ("kept = list(filter(None, [0, 1]))\nprint(kept)", OTHER, {OTHER}),  # builtin filter() is no image filter
    ("import numpy as np\nred = np.zeros((4, 4, 3))[:, :, 0]\nprint(red)", OTHER, {OTHER}),  # channel selection is no crop
    ("def broken(:\n    pass", SYNTAX_ERROR, {SYNTAX_ERROR}),
]


@pytest.mark.parametrize(("code", "primary", "classes"), CASES)
def test_classes_from_the_syntax_tree(code, primary, classes):
    operations = classify(code)
    assert operations.primary == primary
    assert set(operations.classes) == classes


def test_arithmetic_inside_an_image_operation_is_part_of_it():
    # The coordinates are computed in the crop's arguments: a crop, not numeric work.
    assert classify("from PIL import Image\nimg = Image.open('a.png')\nimg.crop((10 * 2, 0, 50 + 5, 40))").classes == {CROP}
    # The same arithmetic outside any image operation is numeric.
    assert classify("box = (10 * 2, 0, 50 + 5, 40)").classes == {NUMERIC}


def test_numbers_do_not_change_the_classes():
    assert classify("print(3 + 4)") == classify("print(300 + 41.5)")
