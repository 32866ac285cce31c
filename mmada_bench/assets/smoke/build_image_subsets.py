"""Build the bundled smoke subsets of the image tasks (pope, mme, flickr30k).

Each is a Parquet file in the task's Hugging Face schema (lmms-lab/POPE, lmms-lab/MME,
lmms-lab/flickr30k), with the image column stored as the ``datasets`` Image feature stores it
(``struct<bytes: binary, path: string>``, PNG bytes). The images are 48x48 PIL drawings of simple
shapes made here, so there is nothing to license; questions and captions describe the drawings.
They are for plumbing checks only (split "smoke").

    python mmada_bench/assets/smoke/build_image_subsets.py   # rewrites <task>/test.parquet
"""
from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SIZE = 48
COLORS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 160, 60), "yellow": (230, 200, 20)}
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def draw(shape: str, color: str, count: int = 1, background: str = "white") -> bytes:
    """PNG bytes of ``count`` shapes of one colour on a plain background."""
    image = Image.new("RGB", (SIZE, SIZE), background)
    pen = ImageDraw.Draw(image)
    step = SIZE // max(count, 1)
    for i in range(count):
        box = (i * step + 3, 14, (i + 1) * step - 3, 14 + min(step - 6, 20))
        if shape == "circle":
            pen.ellipse(box, fill=COLORS[color])
        elif shape == "square":
            pen.rectangle(box, fill=COLORS[color])
        else:  # triangle
            pen.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])], fill=COLORS[color])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def write(rows: list[dict], schema: pa.Schema, task: str) -> None:
    path = HERE / task / "test.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    print(f"{path}: {len(rows)} rows, {path.stat().st_size} bytes")


def build_pope() -> None:
    images = {"smoke_0.png": draw("circle", "red"), "smoke_1.png": draw("square", "blue")}
    present = {"smoke_0.png": "circle", "smoke_1.png": "square"}
    absent = {"smoke_0.png": {"adversarial": "square", "popular": "triangle", "random": "dog"},
              "smoke_1.png": {"adversarial": "circle", "popular": "triangle", "random": "car"}}
    rows, qid = [], 0
    for split in ("adversarial", "popular", "random"):
        for name, data in images.items():
            for thing, answer in ((present[name], "yes"), (absent[name][split], "no")):
                qid += 1
                rows.append({"id": str(qid), "question_id": str(qid), "question": f"Is there a {thing} in the image?",
                             "answer": answer, "image_source": name, "image": {"bytes": data, "path": name},
                             "category": split})
    schema = pa.schema([("id", pa.string()), ("question_id", pa.string()), ("question", pa.string()),
                        ("answer", pa.string()), ("image_source", pa.string()), ("image", IMAGE_TYPE),
                        ("category", pa.string())])
    write(rows, schema, "pope")


MME_QUESTIONS = {  # category -> (drawing, [(question, answer), (question, answer)])
    "existence": (("circle", "red", 1), [("Is there a circle in this image?", "Yes"), ("Is there a dog in this image?", "No")]),
    "count": (("square", "blue", 2), [("Are there two squares in this image?", "Yes"), ("Are there five squares in this image?", "No")]),
    "position": (("circle", "green", 1), [("Is the circle in the middle of the image?", "Yes"), ("Is the circle at the top of the image?", "No")]),
    "color": (("square", "yellow", 1), [("Is the square yellow?", "Yes"), ("Is the square purple?", "No")]),
    "posters": (("triangle", "red", 1), [("Is this a drawing of a triangle?", "Yes"), ("Is this a movie poster of Titanic?", "No")]),
    "celebrity": (("circle", "blue", 1), [("Is this a simple drawing?", "Yes"), ("Is the person in the image a famous actor?", "No")]),
    "scene": (("square", "green", 1), [("Is the background of this image white?", "Yes"), ("Is this image taken in a forest?", "No")]),
    "landmark": (("triangle", "blue", 1), [("Is this a drawing of a triangle?", "Yes"), ("Is this a photo of the Eiffel Tower?", "No")]),
    "artwork": (("circle", "yellow", 1), [("Is this a drawing of a circle?", "Yes"), ("Is this artwork painted by Monet?", "No")]),
    "OCR": (("square", "red", 1), [("Does the image contain no text?", "Yes"), ("Is the word 'hello' written in the image?", "No")]),
    "commonsense_reasoning": (("circle", "green", 1), [("Can a circle roll?", "Yes"), ("Is the circle square?", "No")]),
    "numerical_calculation": (("square", "blue", 3), [("Is the number of squares plus one equal to four?", "Yes"), ("Is the number of squares times two equal to five?", "No")]),
    "text_translation": (("triangle", "green", 1), [("Is 'triangle' in French 'triangle'?", "Yes"), ("Is 'circle' in French 'chien'?", "No")]),
    "code_reasoning": (("triangle", "yellow", 2), [("Would print(1 + 1) output 2?", "Yes"), ("Would print(2 * 3) output 5?", "No")]),
}


def build_mme() -> None:
    rows = []
    for number, (category, (drawing, questions)) in enumerate(MME_QUESTIONS.items()):
        path = f"{category}/smoke_{number}.png"
        data = draw(*drawing)
        for question, answer in questions:
            rows.append({"question_id": path, "image": {"bytes": data, "path": path},
                         "question": f"{question} Please answer yes or no.", "answer": answer, "category": category})
    schema = pa.schema([("question_id", pa.string()), ("image", IMAGE_TYPE), ("question", pa.string()),
                        ("answer", pa.string()), ("category", pa.string())])
    write(rows, schema, "mme")


def build_flickr30k() -> None:
    drawings = [("circle", "red", 1), ("square", "blue", 2), ("triangle", "green", 1),
                ("circle", "yellow", 3), ("square", "red", 1), ("triangle", "blue", 2)]
    words = {1: "a", 2: "two", 3: "three"}
    rows = []
    for number, (shape, color, count) in enumerate(drawings):
        noun = shape if count == 1 else f"{shape}s"
        thing = f"{words[count]} {color} {noun}"
        captions = [f"A drawing of {thing} on a white background.", f"{thing.capitalize()} drawn on white.",
                    f"There is {thing} in the picture.", f"A simple picture showing {thing}.",
                    f"{thing.capitalize()} in the middle of a white image."]
        img_id = str(9000000 + number)
        rows.append({"image": {"bytes": draw(shape, color, count), "path": f"{img_id}.png"}, "caption": captions,
                     "sentids": [str(int(img_id) * 5 + k) for k in range(5)], "img_id": img_id,
                     "filename": f"{img_id}.png"})
    schema = pa.schema([("image", IMAGE_TYPE), ("caption", pa.list_(pa.string())), ("sentids", pa.list_(pa.string())),
                        ("img_id", pa.string()), ("filename", pa.string())])
    write(rows, schema, "flickr30k")


if __name__ == "__main__":
    build_pope()
    build_mme()
    build_flickr30k()
