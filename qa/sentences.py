"""Sentence boundaries with exact character offsets."""

from __future__ import annotations

import ctypes
import re

import blingfire
import numpy as np

# The library blingfire's Python wrapper calls.
_BLINGFIRE = blingfire.blingfire

_OPENERS = {"“": "”", "(": ")", "[": "]", "‘": "’"}
_LINE = re.compile(r"[^\n]+")
# blingfire ends a sentence after a title that starts the next one: "He left. Dr. Jones ..."
_TITLE = re.compile(r"(?:Mr|Mrs|Ms|Dr|Prof|Sen|Rep|Gov|Gen|Lt|Col|Sgt|St|Rev|Jr|Capt|Maj)\.")


def _unbalanced(text: str) -> bool:
    """True while a quotation or parenthesis opened in `text` is still open at its end."""
    for opener, closer in _OPENERS.items():
        # ’ inside a word ("Don’t") is an apostrophe, not a closing quote.
        closers = len(re.findall(r"’(?!\w)", text)) if closer == "’" else text.count(closer)
        if text.count(opener) > closers:
            return True
    # Straight double quotes have no direction: an odd count means one is still open.
    return text.count('"') % 2 == 1


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of every sentence in `text`, in order; `text[start:end]` is the sentence.

    blingfire finds the boundaries (it keeps "U.S. Secretary", "Jan. 5" and "3 p.m." inside a
    sentence); a line break always ends one (captions, headings and list items are sentences
    of their own); and a boundary inside an open quotation or parenthesis is removed, so
    “End this war. Engage in diplomacy,” he said. stays one sentence.
    """
    spans: list[tuple[int, int]] = []
    for line in _LINE.finditer(text):
        pieces = _sentence_offsets(line.group()) if line.group().strip() else []
        pending: tuple[int, int] | None = None
        for start, end in pieces:
            start, end = start + line.start(), end + line.start()
            if pending is not None:
                start = pending[0]
            piece = text[start:end]
            if (_unbalanced(piece) or _TITLE.fullmatch(piece.strip())) and end < line.end() - 1:
                pending = (start, end)
                continue
            pending = None
            spans.append((start, end))
        if pending is not None:
            spans.append(pending)
    return [_trimmed(text, start, end) for start, end in spans if text[start:end].strip()]


def _sentence_offsets(line: str) -> list[tuple[int, int]]:
    """blingfire's sentences of `line` as (start, end) character offsets: what
    `blingfire.text_to_sentences_and_offsets(line)[1]` gives, but with its byte-to-character
    mapping done by numpy; that wrapper walks every byte in Python, most of a build's time
    spent on sentences."""
    data = line.encode("utf-8")
    size = 2 * len(data)
    text = ctypes.create_string_buffer(size)
    starts = (ctypes.c_int32 * size)()
    ends = (ctypes.c_int32 * size)()
    written = _BLINGFIRE.TextToSentencesWithOffsets(
        ctypes.c_char_p(data),
        ctypes.c_int(len(data)),
        ctypes.byref(text),
        ctypes.byref(starts),
        ctypes.byref(ends),
        ctypes.c_int(size),
    )
    if written == -1 or written > size:
        return []
    count = text.value.count(b"\n") + 1
    first = np.frombuffer(memoryview(starts), dtype=np.int32, count=count)
    last = np.frombuffer(memoryview(ends), dtype=np.int32, count=count)  # inclusive byte offsets
    if len(data) == len(line):  # ASCII: bytes are characters
        return list(zip(first.tolist(), (last + 1).tolist(), strict=True))
    # The character each byte belongs to; one past the end for the end of the line.
    lead = (np.frombuffer(data, dtype=np.uint8) & 0xC0) != 0x80
    character = np.append(np.cumsum(lead) - 1, len(line))
    return list(zip(character[first].tolist(), character[last + 1].tolist(), strict=True))


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
