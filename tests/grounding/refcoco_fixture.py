"""A miniature of the published REC layouts, built on the fly: RefCOCO (refer toolkit) and VLM-R1's JSON.

``build(root)`` writes, with boxes the tests know:

* ``coco/train2014/COCO_train2014_<id>.jpg`` — three pictures, each with coloured rectangles;
* ``refer/refcoco/refs(unc).p`` and ``refer/refcoco/instances.json`` — the refer toolkit's
  layout: refs (``ref_id``, ``ann_id``, ``image_id``, ``split``, ``sentences``, and the
  ``file_name`` with the annotation suffix the toolkit writes), COCO annotations with
  ``bbox`` = ``[x, y, w, h]``;
* ``vlmr1/refcoco_train.json``, ``vlmr1/refcocog_val.jsonl`` and ``vlmr1/rec.yaml`` —
  VLM-R1's processed REC files (``image``, ``problem``, ``solution`` = ``[x1, y1, x2, y2]``)
  and its data config of ``json_path`` entries.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

from PIL import Image, ImageDraw

#: image id → (size, [(ann id, colour, (x1, y1, x2, y2), [sentences], split)])
IMAGES = {
    9: ((640, 480), [(901, "red", (100, 60, 300, 200), ["red box on the left", "the red one"], "train"),
                     (902, "blue", (400, 250, 600, 450), ["blue box bottom right"], "train")]),
    25: ((500, 375), [(2501, "green", (40, 40, 140, 300), ["tall green box"], "val")]),
    30: ((427, 640), [(3001, "orange", (200, 100, 420, 260), ["orange box at the top"], "testA")]),
}
COLOURS = {"red": (220, 30, 30), "blue": (30, 70, 220), "green": (30, 160, 50), "orange": (245, 130, 20)}


def file_name(image_id: int) -> str:
    return f"COCO_train2014_{image_id:012d}.jpg"


def build(root: Path) -> dict[str, Path]:
    images = root / "coco" / "train2014"
    images.mkdir(parents=True)
    refs, annotations, coco_images = [], [], []
    ref_id = 0
    for image_id, (size, objects) in IMAGES.items():
        image = Image.new("RGB", size, (240, 240, 235))
        draw = ImageDraw.Draw(image)
        for ann_id, colour, (x1, y1, x2, y2), sentences, split in objects:
            draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=COLOURS[colour])
            annotations.append({"id": ann_id, "image_id": image_id, "bbox": [x1, y1, x2 - x1, y2 - y1], "category_id": 1})
            refs.append(
                {
                    "ref_id": ref_id, "ann_id": ann_id, "image_id": image_id, "split": split, "category_id": 1,
                    "file_name": file_name(image_id).replace(".jpg", f"_{ann_id}.jpg"),
                    "sentences": [{"sent": s, "raw": s, "tokens": s.split(), "sent_id": 10 * ref_id + i} for i, s in enumerate(sentences)],
                }
            )
            ref_id += 1
        image.save(images / file_name(image_id), quality=95)
        coco_images.append({"id": image_id, "file_name": file_name(image_id), "width": size[0], "height": size[1]})
    refer = root / "refer" / "refcoco"
    refer.mkdir(parents=True)
    (refer / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    (refer / "instances.json").write_text(json.dumps({"images": coco_images, "annotations": annotations, "categories": [{"id": 1, "name": "box"}]}))

    vlmr1 = root / "vlmr1"
    vlmr1.mkdir()
    prompt = "Please provide the bounding box coordinate of the region this sentence describes: {}."
    train = [
        {"image": file_name(image_id), "problem": prompt.format(sentences[0]), "solution": list(box), "normal_caption": sentences[0]}
        for image_id, (_, objects) in IMAGES.items() for _, _, box, sentences, split in objects if split == "train"
    ]
    (vlmr1 / "refcoco_train.json").write_text(json.dumps(train))
    val = [
        {"image": file_name(image_id), "problem": prompt.format(sentences[0]), "solution": list(box)}
        for image_id, (_, objects) in IMAGES.items() for _, _, box, sentences, split in objects if split != "train"
    ]
    (vlmr1 / "refcocog_val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in val))
    (vlmr1 / "rec.yaml").write_text("datasets:\n    - json_path: refcoco_train.json\n    - json_path: refcocog_val.jsonl\n      sampling_strategy: first:1\n")
    return {"image_root": images, "refer_root": root / "refer", "rec_yaml": vlmr1 / "rec.yaml", "vlmr1": vlmr1}
