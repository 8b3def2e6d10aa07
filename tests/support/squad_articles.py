"""A corpus of news-like articles cut from the shared SQuAD data, with their questions."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import SQUAD


def squad_corpus(folder: Path, titles: int = 5, per_article: int = 4) -> list[dict[str, str]]:
    """Articles of `per_article` SQuAD paragraphs each (JSON lines), and their questions."""
    data = json.loads(SQUAD.read_text(encoding="utf-8"))["data"][:titles]
    folder.mkdir(parents=True, exist_ok=True)
    questions = []
    lines = []
    for article in data:
        paragraphs = article["paragraphs"]
        for begin in range(0, len(paragraphs), per_article):
            group = paragraphs[begin : begin + per_article]
            article_id = f"{article['title']}-{begin // per_article}".lower()
            text = "\n\n".join(p["context"] for p in group)
            lines.append(
                json.dumps(
                    {
                        "id": article_id,
                        # Distinct titles: identical short title chunks would tie in every
                        # ranking, and ties fall by chunk number, which sharding changes.
                        "title": " ".join(group[0]["context"].split()[:7]),
                        "text": text,
                        "source": f"outlet-{len(lines) % 3}",
                        "published": f"2023-03-{1 + len(lines) % 28:02d}",
                    }
                )
            )
            questions += [
                {"question": q["question"], "article": article_id} for p in group for q in p["qas"]
            ]
    (folder / "articles.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return questions
