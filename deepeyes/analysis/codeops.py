"""What a code call does, read from its syntax tree (Python ``ast``), never by running it.

The classes answer "what did the model use the sandbox for": perception tasks should lead
to image operations (cropping, zooming, enhancing), reasoning tasks to numeric work.

A call gets every class one of its operations belongs to (:attr:`CodeOperations.classes`)
and one *primary* class, the first present in :data:`CODE_CLASSES` order: cropping or
zooming, then measuring/counting (a grey conversion before counting serves the count),
then enhancing, plotting, numeric work. Helpers do not count on their own: arithmetic that
only computes the arguments of an image operation is part of that operation, and reading
an image's size (``img.size``, ``a.shape``) or calling ``len()`` makes a call
``measure_count`` only when it does nothing else (``w, h = img.size; img.crop(...)`` is a
crop). ``file_other`` is a call with none of these operations (loading, printing, file
work); code that does not parse is ``syntax_error``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import lru_cache

CROP, ENHANCE, PLOT, MEASURE, NUMERIC, OTHER = "crop_zoom_resize", "enhance_filter", "plotting", "measure_count", "numeric", "file_other"
SYNTAX_ERROR = "syntax_error"
#: Precedence order for the primary class (see module docstring).
CODE_CLASSES: tuple[str, ...] = (CROP, MEASURE, ENHANCE, PLOT, NUMERIC, OTHER)
ALL_CLASSES: tuple[str, ...] = (*CODE_CLASSES, SYNTAX_ERROR)
LABELS: dict[str, str] = {
    CROP: "crop / zoom / resize",
    ENHANCE: "enhance / filter",
    PLOT: "plotting / drawing",
    MEASURE: "measure / count",
    NUMERIC: "arithmetic / numeric",
    OTHER: "file / other",
    SYNTAX_ERROR: "does not parse",
}

_FUNCTION_CLASSES: dict[str, str] = {
    **dict.fromkeys(
        ("crop", "resize", "thumbnail", "zoom", "rescale", "rotate", "transpose", "flip", "fliplr", "flipud", "warpAffine",
         "warpPerspective", "getRectSubPix", "pyrUp", "pyrDown", "pad", "contain", "cover", "scale"),
        CROP,
    ),
    **dict.fromkeys(
        ("filter", "enhance", "GaussianBlur", "medianBlur", "blur", "bilateralFilter", "threshold", "adaptiveThreshold",
         "equalizeHist", "Canny", "Sobel", "Laplacian", "filter2D", "dilate", "erode", "morphologyEx", "cvtColor",
         "autocontrast", "equalize", "invert", "posterize", "solarize", "grayscale", "point", "gaussian_filter",
         "median_filter", "sobel", "sharpen", "Brightness", "Contrast", "Sharpness", "Color", "UnsharpMask", "createCLAHE",
         "normalize"),
        ENHANCE,
    ),
    **dict.fromkeys(
        ("plot", "scatter", "bar", "barh", "hist", "savefig", "imshow", "subplots", "pie", "Draw", "rectangle", "ellipse",
         "polygon", "circle", "putText", "drawContours"),
        PLOT,
    ),
    **dict.fromkeys(
        ("getpixel", "getbbox", "histogram", "getcolors", "getextrema", "count_nonzero", "findContours", "connectedComponents",
         "connectedComponentsWithStats", "label", "contourArea", "boundingRect", "Stat", "unique", "bincount", "argwhere",
         "nonzero", "count", "HoughCircles", "HoughLines", "HoughLinesP", "regionprops"),
        MEASURE,
    ),
    **dict.fromkeys(
        ("sqrt", "mean", "median", "std", "var", "sum", "round", "abs", "min", "max", "log", "log10", "exp", "ceil",
         "floor", "average", "percentile", "dot", "hypot", "degrees", "radians", "sin", "cos", "tan", "atan2", "fsum", "prod",
         "cumsum", "diff", "solve", "isclose", "gcd", "factorial", "comb", "Fraction", "Decimal", "sympify", "simplify"),
        NUMERIC,
    ),
}
#: Modules whose every call is of one class, whatever the function is called.
_MODULE_CLASSES: dict[str, str] = {
    "matplotlib": PLOT, "seaborn": PLOT, "plotly": PLOT, "PIL.ImageDraw": PLOT,
    "PIL.ImageEnhance": ENHANCE, "PIL.ImageFilter": ENHANCE,
    "PIL.ImageStat": MEASURE,
    "math": NUMERIC, "statistics": NUMERIC, "cmath": NUMERIC, "fractions": NUMERIC, "sympy": NUMERIC,
}
#: Bare (unimported) names: only Python builtins mean something; ``filter()`` is not an image filter.
_BUILTIN_CLASSES: dict[str, str] = dict.fromkeys(("sum", "round", "abs", "min", "max", "pow", "divmod"), NUMERIC)
#: ``img.convert(mode)`` is an enhancement only to a mode that changes what is seen (grey, binary).
_PLAIN_MODES = frozenset({"RGB", "RGBA"})
_SIZE_ATTRIBUTES = frozenset({"size", "shape", "width", "height"})
_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
_IMAGE_OPS = frozenset({CROP, ENHANCE, PLOT})


@dataclass(frozen=True)
class CodeOperations:
    """The classes of one code call and its primary class (both from :data:`ALL_CLASSES`)."""

    classes: frozenset[str]
    primary: str


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)))


class _Classifier(ast.NodeVisitor):
    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}  # local name → full module/object path, from the imports seen so far
        self.found: set[str] = set()
        self.helpers: set[str] = set()  # classes of helper operations (size reads, len()): used alone only
        self._image_op_depth = 0

    def _call_class(self, call: ast.Call) -> str | None:
        if isinstance(call.func, ast.Attribute) and call.func.attr == "convert":
            mode = call.args[0] if call.args else None
            plain = mode is None or (isinstance(mode, ast.Constant) and mode.value in _PLAIN_MODES)
            return None if plain else ENHANCE
        name = _dotted(call.func)
        if name is None:  # e.g. a method of a call's result: classify by the method name
            return _FUNCTION_CLASSES.get(call.func.attr) if isinstance(call.func, ast.Attribute) else None
        head, _, rest = name.partition(".")
        if not rest and head not in self.aliases:
            return _BUILTIN_CLASSES.get(head)
        full = self.aliases.get(head, head) + ("." + rest if rest else "")
        for module, cls in _MODULE_CLASSES.items():
            if full == module or full.startswith(module + "."):
                return cls
        return _FUNCTION_CLASSES.get(full.rsplit(".", 1)[-1])

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            root = alias.name.split(".")[0]
            self.aliases[alias.asname or root] = alias.name if alias.asname else root

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}" if node.module else alias.name

    def visit_Constant(self, node: ast.Constant) -> None:
        pass  # leaves: skip generic_visit's field walk

    def visit_Name(self, node: ast.Name) -> None:
        pass

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id == "len" and "len" not in self.aliases:
            self.helpers.add(MEASURE)
        cls = self._call_class(node)
        if cls is not None:
            self.found.add(cls)
        inside_op = cls in _IMAGE_OPS
        self._image_op_depth += inside_op
        self.generic_visit(node)
        self._image_op_depth -= inside_op

    def visit_Subscript(self, node: ast.Subscript) -> None:
        # img[y0:y1, x0:x1] — a crop of an array image. A single slice is list slicing, and
        # unbounded slices (a[:, :, 0]) select a channel rather than a region.
        index = node.slice
        slices = [e for e in index.elts if isinstance(e, ast.Slice)] if isinstance(index, ast.Tuple) else []
        is_crop = len(slices) >= 2 and any(s.lower is not None or s.upper is not None for s in slices)
        if is_crop:
            self.found.add(CROP)
        self._image_op_depth += is_crop
        self.generic_visit(node)
        self._image_op_depth -= is_crop

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in _SIZE_ATTRIBUTES and isinstance(node.ctx, ast.Load):
            self.helpers.add(MEASURE)
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, _ARITHMETIC) and not self._image_op_depth and not (_is_text(node.left) or _is_text(node.right)):
            self.found.add(NUMERIC)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.op, _ARITHMETIC) and not _is_text(node.value):
            self.found.add(NUMERIC)
        self.generic_visit(node)


_DIGITS = re.compile(r"[0-9]+")


def classify(code: str) -> CodeOperations:
    """Classify one code call. ``code`` is the call's source (the action content, fences removed).

    Digit runs are replaced by ``0`` first: the classes never depend on a number's value
    (and ``0`` keeps every literal and name valid), while models rerun the same code with
    other coordinates all the time — one cached parse serves all of them.
    """
    return _classify(_DIGITS.sub("0", code))


@lru_cache(maxsize=8192)  # bounded: memory does not grow with the run
def _classify(code: str) -> CodeOperations:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):  # ValueError: source with NUL bytes
        return CodeOperations(frozenset({SYNTAX_ERROR}), SYNTAX_ERROR)
    classifier = _Classifier()
    classifier.visit(tree)
    classes = frozenset(classifier.found or classifier.helpers or {OTHER})
    primary = next(cls for cls in CODE_CLASSES if cls in classes)
    return CodeOperations(classes, primary)
