"""Object HalBench test data: a small official-layout folder (question file with base64 images, synonyms,
COCO 2014 annotation files) and an official answer file for it, shared by the task, import and run tests."""

import base64
import io
import json

from PIL import Image

SYNONYMS = """person, man, woman, people
dog, puppy
cat, kitten
car, taxi, sports car
toilet, urinal
chair, seat
tie, necktie
elephant
train
"""
CATEGORIES = ["person", "dog", "cat", "car", "toilet", "chair", "tie", "elephant", "train"]
#: image id → (instance classes, captions); ground truth = instances ∪ caption classes
VAL = {
    101: (["dog", "person"], ["A man walking his puppy."]),
    102: (["car"], ["A taxi parked next to a man."]),
    103: (["toilet"], ["A bathroom with a toilet seat."]),
    104: (["elephant"], ["A baby elephant near train tracks."]),
}
TRAIN = {205: (["cat"], ["A kitten on a chair."])}


def png_base64(colour):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def coco_files(folder, split, images):
    folder.mkdir(parents=True, exist_ok=True)
    cats = [{"id": i + 1, "name": n, "supercategory": "x"} for i, n in enumerate(CATEGORIES)]
    imgs = [{"id": i, "file_name": f"COCO_{split}2014_{i:012d}.jpg"} for i in images]
    boxes = [
        {"id": k, "image_id": i, "category_id": CATEGORIES.index(c) + 1, "bbox": [0, 0, 1, 1]}
        for k, (i, c) in enumerate((i, c) for i, (cs, _) in images.items() for c in cs)
    ]
    caps = [
        {"id": k, "image_id": i, "caption": t}
        for k, (i, t) in enumerate((i, t) for i, (_, ts) in images.items() for t in ts)
    ]
    instances = {"info": {}, "licenses": [], "images": imgs, "annotations": boxes, "categories": cats}
    (folder / f"instances_{split}2014.json").write_text(json.dumps(instances))
    (folder / f"captions_{split}2014.json").write_text(json.dumps({"images": imgs, "annotations": caps}))


def make_data(root, image_ids=(101, 102, 103, 104), train=False):
    """An Object HalBench folder in the official layout: question file with base64 images, synonyms and
    the COCO val2014 (and optionally train2014) annotation files in annotations/."""
    root.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(
            {"image_id": i, "question": f"Describe image {k} in detail.", "image": png_base64((k, 0, 0))}
        )
        for k, i in enumerate(image_ids, 1)
    ]
    (root / "obj_halbench_300_with_image.jsonl").write_text("\n".join(lines) + "\n")
    (root / "synonyms_refine.txt").write_text(SYNONYMS)
    coco_files(root / "annotations", "val", VAL)
    if train:
        coco_files(root / "annotations", "train", TRAIN)
    return root


ANSWERS = {
    101: "A man and his puppy play with a cat. The dog runs.",
    102: "Yellow taxi.",
    103: "A clean white bathroom with tiles.",
    104: "Assistant: An elephant sits on a chair wearing a bow tie.",
}


def answer_file(path, with_ids=True):
    lines = [
        {
            "question_id": k,
            **({"image_id": i} if with_ids else {}),
            "prompt": f"Describe image {k + 1} in detail.",
        }
        | {"text": text, "model_id": "m"}
        for k, (i, text) in enumerate(ANSWERS.items())
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path
