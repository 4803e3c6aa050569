"""MMBench TSV builders shared by the MMBench tests: VLMEvalKit's column order, tiny PNG images as base64,
and a TSV writer in the official dialect (tab-separated, one header row)."""

import base64
import csv
import io

from PIL import Image

VLMEVAL_COLUMNS = [
    "index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category", "split", "image",
    "source", "comment",
]  # fmt: skip


def png_b64(colour):
    buf = io.BytesIO()
    Image.new("RGB", (3, 3), colour).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def write_tsv(path, rows, columns=VLMEVAL_COLUMNS):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([r.get(c, "") for c in columns])
    return path
