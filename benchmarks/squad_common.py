"""The shared SQuAD data as a corpus of documents, for the benchmarks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

SQUAD = (
    Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "squad-dev-v1.1-given.json"
)


@dataclass(frozen=True)
class Question:
    article_id: str
    question: str
    answers: tuple[str, ...]
    context: str


def load_squad(path: Path = SQUAD) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["data"]


def document_name(entry: dict) -> str:
    return f"{entry['title']}.txt"


def document_text(entry: dict) -> str:
    """Title line, blank line, then the paragraphs separated by blank lines."""
    title = entry["title"].replace("_", " ")
    return "\n\n".join([title, *(p["context"] for p in entry["paragraphs"])]) + "\n"


def write_corpus(folder: Path, data: list[dict]) -> None:
    """One .txt document per article; files already identical are left alone."""
    folder.mkdir(parents=True, exist_ok=True)
    for entry in data:
        path = folder / document_name(entry)
        text = document_text(entry)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def questions(data: list[dict]) -> list[Question]:
    return [
        Question(
            document_name(entry),
            qa["question"],
            tuple(a["text"] for a in qa["answers"]),
            paragraph["context"],
        )
        for entry in data
        for paragraph in entry["paragraphs"]
        for qa in paragraph["qas"]
    ]
