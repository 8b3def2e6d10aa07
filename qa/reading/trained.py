"""The trained reader: a transformer with a question-answering head reads question and passage
together and points at the answer's first and last tokens.

It loads any extractive QA model folder in the Hugging Face layout (config.json,
model.safetensors, tokenizer.json), such as the one `qa train-reader` writes to
models/reader/, or a folder holding a ready `model.onnx`. It runs by ONNX Runtime: the
PyTorch weights are exported once and the export is cached on disk (qa.onnx_cache), so a new
process needs neither PyTorch nor transformers to read. Tokenization is the `tokenizers`
library's, with the same windows and offsets the training used.

Besides the plain `Reader` interface it reads focused windows: a sentence with its neighbours
as context, the answer confined to the sentence, with the raw scores the answer ranker uses.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.reading.base import Span
from qa.reading.heuristic import kind_intervals, question_type
from qa.terms import STOPWORDS, content_stems, stem, words

log = logging.getLogger(__name__)

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
PRECISIONS = ("int8", "fp32")
_MAX_QUESTION_TOKENS = 64
# A best span holding an answer of the asked kind keeps its extent with this many other words
# (a unit, "and"); with more, or with "of", it is cut down to the answer.
_JOINING_WORDS = 2


def early_feed_forward(model: bytes) -> list[str]:
    """The matrix products of the feed-forward blocks in the first half of a BERT-style
    encoder's layers, by their node names in the export.

    Their inputs carry a few huge activations, so one int8 scale for a whole activation
    tensor rounds the rest away; kept fp32 (a third of the weights' arithmetic), they cut
    int8's divergence from fp32 fivefold: mean KL of the start and end distributions on 300
    training-article questions 0.0134 → 0.0025, against 0.0070 for every layer's feed-forward
    output and 0.0098 for all of layer 0 (none of the held-out articles was used to choose).
    """
    import onnx

    pattern = re.compile(r"layer\.(\d+)/(?:intermediate|output)/dense/MatMul$")
    found = [
        (int(match.group(1)), node.name)
        for node in onnx.load_from_string(model).graph.node
        if node.op_type == "MatMul" and (match := pattern.search(node.name))
    ]
    layers = 1 + max((layer for layer, _ in found), default=-1)
    return [name for layer, name in found if layer < layers // 2]


@dataclass(frozen=True)
class Focus:
    """Read `text`, but answer only from `text[start:end]` (the rest is context)."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Reading:
    """A reader's verdict on one focus: its best span (offsets into the focus's text) and the
    raw scores behind it, comparable across the windows of one question.

    `logit` is the span's start + end score; `null_logit` the same for the window's [CLS]
    token, the model's way of saying "not here"; `logit - null_logit` is the margin.
    """

    span: Span | None
    logit: float
    null_logit: float

    @property
    def margin(self) -> float:
        return self.logit - self.null_logit


class TrainedReader:
    """A question-answering model read through ONNX Runtime (or PyTorch, if asked).

    Args:
        model_dir: the model folder.
        max_length: tokens per window (question + passage); longer passages are read in
            windows overlapping by `stride` tokens.
        max_answer_tokens: the longest answer considered.
        typed_slack: for a question that asks for a kind of answer (a duration, a number, a
            date, a place, a name), the best span of that kind wins over the best span of
            any kind when its score is at most this much lower; 0 turns this off.
        echo_penalty: subtracted from a span's score for each of its tokens that repeats a
            content word of the question: answers rarely restate what the question already
            says, and the model's own scores often run a span across the question's words
            ("basketball player Brittney Griner … Viktor Bout"). 0 turns this off.
        modifier_penalty: subtracted from a span that ends right before a name the question
            gives: such a span describes what the question names ("the release of
            *basketball player* Brittney Griner") rather than the thing asked about. Neutral
            on SQuAD's held-out articles (closed F1 70.68 → 70.62, EM 59.42 → 59.49 at 1 to
            2.5); it lets the answer of the asked kind win where the model prefers the
            description by a little. 0 turns this off.
        precision: "int8" runs the model with its weights quantized to int8 (ONNX Runtime
            dynamic quantization, per output channel) but for `early_feed_forward`: 1.4x as
            fast on CPU, F1 within 0.2 of fp32 on unseen articles, and scores that move
            slightly with the other windows of a batch (the activations' scale is the batch's);
            "fp32" runs the weights as trained. A folder's own model.onnx is run as it is.
        runtime: "onnx" or "torch".
    """

    name = "trained"

    def __init__(
        self,
        model_dir: Path | str,
        *,
        max_length: int = 192,
        stride: int = 64,
        max_answer_tokens: int = 30,
        batch_size: int = 16,
        typed_slack: float = 2.0,
        echo_penalty: float = 0.75,
        modifier_penalty: float = 1.0,
        runtime: str = "onnx",
        precision: str = "int8",
    ):
        if runtime not in ("onnx", "torch"):
            raise ValueError(f"runtime must be 'onnx' or 'torch', not {runtime!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        self.model_dir = Path(model_dir)
        self._max_length = max_length
        self._stride = stride
        self._max_answer_tokens = max_answer_tokens
        self._batch_size = batch_size
        self._typed_slack = typed_slack
        self._echo_penalty = echo_penalty
        self._modifier_penalty = modifier_penalty
        self._runtime = runtime
        self._precision = precision
        self._tokenizer: Any = None
        self._question_tokenizer: Any = None
        self._run: Any = None  # (ids, mask, types) -> (start logits, end logits)
        self._lock = threading.Lock()

    @property
    def precision(self) -> str:
        return self._precision

    @staticmethod
    def present(model_dir: Path | str) -> bool:
        """Whether `model_dir` holds a model this reader can load."""
        folder = Path(model_dir)
        has_weights = (folder / "model.onnx").is_file() or (folder / "model.safetensors").is_file()
        return has_weights and (folder / "tokenizer.json").is_file()

    @classmethod
    def from_loaded(cls, model: Any, tokenizer: Any, **options: Any) -> TrainedReader:
        """A reader around a PyTorch model in memory (a training run judging itself).

        `tokenizer` is a transformers fast tokenizer; its `tokenizers` backend is used.
        """
        reader = cls("", runtime="torch", **options)
        reader._set_tokenizer(tokenizer.backend_tokenizer)
        reader._run = _torch_runner(model)
        return reader

    # --- loading --------------------------------------------------------------------------

    def warm_up(self) -> None:
        with self._lock:
            if self._run is not None:
                return
            from tokenizers import Tokenizer

            self._set_tokenizer(Tokenizer.from_file(str(self.model_dir / "tokenizer.json")))
            self._run = self._onnx_runner() if self._runtime == "onnx" else self._torch_model()

    def _set_tokenizer(self, tokenizer: Any) -> None:
        pair = tokenizer.__class__.from_str(tokenizer.to_str())
        pair.no_padding()
        pair.enable_truncation(
            self._max_length, stride=self._stride, strategy="only_second", direction="right"
        )
        question = tokenizer.__class__.from_str(tokenizer.to_str())
        question.no_padding()
        question.no_truncation()
        self._tokenizer, self._question_tokenizer = pair, question

    def onnx_model(self) -> bytes:
        """The model as ONNX: the folder's own model.onnx, else the cached export of its
        PyTorch weights at the reader's precision (exported and quantized now if not cached
        yet)."""
        shipped = self.model_dir / "model.onnx"
        if shipped.is_file():
            return shipped.read_bytes()
        from qa.onnx_cache import cached_export, model_key, quantized_int8

        files = [p for p in self.model_dir.iterdir() if p.is_file()]
        described = {"inputs": _INPUTS, "opset": 17}

        def exported() -> bytes:
            return cached_export(model_key("qa-reader", files, described), self._export)

        if self._precision == "fp32":
            return exported()
        # The fp32 export is read only when the quantized one is not cached yet.
        key = model_key(
            "qa-reader", files, {**described, "precision": self._precision, "fp32": "early FFN"}
        )

        def quantized() -> bytes:
            fp32 = exported()
            return quantized_int8(fp32, keep=early_feed_forward(fp32))

        return cached_export(key, quantized)

    def _onnx_runner(self) -> Any:
        import onnxruntime

        data = self.onnx_model()
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        names = {i.name for i in session.get_inputs()}

        def run(feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
            start, end = session.run(None, {k: v for k, v in feed.items() if k in names})
            return start, end

        return run

    def _load_torch(self) -> Any:
        import torch
        from transformers import AutoModelForQuestionAnswering

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = AutoModelForQuestionAnswering.from_pretrained(
                str(self.model_dir), dtype=torch.float32
            )
        return model.eval()

    def _torch_model(self) -> Any:
        return _torch_runner(self._load_torch())

    def _export(self) -> bytes:
        import torch

        from qa.onnx_cache import export_module

        model = self._load_torch()

        class Logits(torch.nn.Module):
            def __init__(self, inner: torch.nn.Module):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
                out = self.inner(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    token_type_ids=token_type_ids,
                    return_dict=True,
                )
                return out.start_logits, out.end_logits

        probe = torch.ones((2, 16), dtype=torch.long)
        return export_module(
            Logits(model), (probe, probe, torch.zeros_like(probe)), _INPUTS, ("start", "end")
        )

    # --- reading --------------------------------------------------------------------------

    def read(self, question: str, passages: Sequence[str]) -> list[Span | None]:
        readings = self.read_focused(question, [Focus(p, 0, len(p)) for p in passages])
        return [r.span for r in readings]

    def read_focused(self, question: str, focuses: Sequence[Focus]) -> list[Reading]:
        """The best span inside each focus, in one batched model run per question.

        Focuses on the same text (several sentences of one passage) share its reading: the text
        goes through the model once and each focus takes its best span from the same scores.
        """
        if not focuses:
            return []
        self.warm_up()
        kind_name, kinds = question_type(question)
        typed = self._typed_slack > 0 and kind_name not in ("other", "statement")
        question = self._short_question(question)
        texts = list(dict.fromkeys(f.text for f in focuses))
        of_kind = {text: kind_intervals(text, kinds[:1]) if typed else [] for text in texts}
        asked = set(content_stems(question)) if self._echo_penalty else set()
        echoes = {text: _echo_mask(text, asked) if asked else None for text in texts}
        named = _question_names(question) if self._modifier_penalty else set()
        modifiers = {text: _modifier_mask(text, named) if named else None for text in texts}
        of_text: dict[str, list[int]] = {text: [] for text in texts}
        for index, focus in enumerate(focuses):
            of_text[focus.text].append(index)
        encodings = self._tokenizer.encode_batch([(question, text) for text in texts])
        windows: list[tuple[str, Any]] = []
        for text, encoding in zip(texts, encodings, strict=True):
            windows += [(text, e) for e in [encoding, *encoding.overflowing]]
        start_logits, end_logits = self._logits([e for _, e in windows])
        best: list[Reading | None] = [None] * len(focuses)
        for row, (text, encoding) in enumerate(windows):
            # Shared by every focus on this text (the sentences read with their neighbours).
            offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)
            in_passage = np.asarray([s == 1 for s in encoding.sequence_ids])
            in_passage &= offsets[:, 1] > offsets[:, 0]
            for index in of_text[text]:
                reading = self._decode(
                    offsets,
                    in_passage,
                    start_logits[row],
                    end_logits[row],
                    focuses[index],
                    of_kind[text],
                    echoes[text],
                    modifiers[text],
                )
                current = best[index]
                if reading is not None and (current is None or reading.logit > current.logit):
                    best[index] = reading
        return [r if r is not None else Reading(None, -math.inf, 0.0) for r in best]

    def _short_question(self, question: str) -> str:
        """The question cut to _MAX_QUESTION_TOKENS, so a window always has room to read."""
        encoding = self._question_tokenizer.encode(question, add_special_tokens=False)
        if len(encoding.ids) <= _MAX_QUESTION_TOKENS:
            return question
        return question[: encoding.offsets[_MAX_QUESTION_TOKENS - 1][1]]

    def _logits(self, encodings: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        length = max(len(e.ids) for e in encodings)
        starts, ends = [], []
        for begin in range(0, len(encodings), self._batch_size):
            part = encodings[begin : begin + self._batch_size]
            feed = {name: np.zeros((len(part), length), dtype=np.int64) for name in _INPUTS}
            for row, encoding in enumerate(part):
                n = len(encoding.ids)
                feed["input_ids"][row, :n] = encoding.ids
                feed["attention_mask"][row, :n] = 1
                feed["token_type_ids"][row, :n] = encoding.type_ids
            start, end = self._run(feed)
            starts.append(start)
            ends.append(end)
        return np.concatenate(starts), np.concatenate(ends)

    def _decode(
        self,
        offsets: np.ndarray,
        in_passage: np.ndarray,
        start_logits: np.ndarray,
        end_logits: np.ndarray,
        focus: Focus,
        of_kind: Sequence[tuple[int, int]] = (),
        echo: np.ndarray | None = None,
        modifier: np.ndarray | None = None,
    ) -> Reading | None:
        """The best span inside `focus` of one window (token `offsets` into the text; tokens
        `in_passage` are the text's, not the question's or padding; `echo[c]` marks the
        characters of the text that repeat the question's words, `modifier[c]` the last
        character of a word that runs into a name the question gives)."""
        allowed = in_passage & (offsets[:, 0] >= focus.start) & (offsets[:, 1] <= focus.end)
        positions = np.flatnonzero(allowed)
        if positions.size == 0:
            return None
        starts = start_logits[positions]
        ends = end_logits[positions]
        pair = starts[:, None] + ends[None, :]
        gap = positions[None, :] - positions[:, None]
        pair = np.where((gap >= 0) & (gap < self._max_answer_tokens), pair, -np.inf)
        if echo is not None and self._echo_penalty:
            repeats = np.concatenate([[0.0], np.cumsum(echo[offsets[positions, 0]])])
            pair = pair - self._echo_penalty * (repeats[None, 1:] - repeats[:-1, None])
        if modifier is not None and self._modifier_penalty:
            ends_before_name = modifier[offsets[positions, 1] - 1]
            pair = pair - self._modifier_penalty * ends_before_name[None, :]
        flat = np.unravel_index(int(np.argmax(pair)), pair.shape)
        i, j = int(flat[0]), int(flat[1])
        if of_kind:
            i, j = self._typed_choice(pair, offsets[positions], (i, j), of_kind, focus.text)
        logit = float(pair[i, j])
        null_logit = float(start_logits[0] + end_logits[0])
        start_char = int(offsets[positions[i], 0])
        end_char = int(offsets[positions[j], 1])
        confidence = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, logit - null_logit))))
        return Reading(Span(start_char, end_char, confidence), logit, null_logit)

    def _typed_choice(
        self,
        pair: np.ndarray,
        offsets: np.ndarray,
        best: tuple[int, int],
        of_kind: Sequence[tuple[int, int]],
        text: str,
    ) -> tuple[int, int]:
        """The best-scoring span lying inside one of `of_kind`, if within the slack, else `best`.

        A best span made of answers of the asked kind and at most `_JOINING_WORDS` other words
        keeps its extent: the kind's patterns are narrower than such answers ("1910–1940",
        "2–3 years", "Thomas Vasey and Richard Whatcoat", "151 votes"), and cutting one down
        to a pattern loses words. "sidelines of the summit in New Delhi" is cut to the place,
        and so is a part of a whole, "18 out of 20": the question asks for the part.
        """
        low, high = int(offsets[best[0], 0]), int(offsets[best[1], 1])
        inside = [(a, b) for a, b in of_kind if a < high and low < b]
        if inside:
            others = [
                word
                for word in words(text[low:high])
                if not any(a <= low + word.start() and low + word.end() <= b for a, b in inside)
            ]
            joined_by_of = any(word.group().lower() == "of" for word in others)
            if len(others) <= _JOINING_WORDS and not joined_by_of:
                return best
        floor = pair[best] - self._typed_slack
        close = np.flatnonzero(pair.ravel() >= floor)
        for flat in close[np.argsort(-pair.ravel()[close], kind="stable")][:50]:
            i, j = np.unravel_index(int(flat), pair.shape)
            start, end = int(offsets[i, 0]), int(offsets[j, 1])
            if any(low <= start and end <= high for low, high in of_kind):
                return int(i), int(j)
        return best


def _question_names(question: str) -> set[str]:
    """Stems of the capitalised words after the question's first: the names it gives."""
    return {
        stem(w.group())
        for w in words(question)[1:]
        if w.group()[:1].isupper() and w.group().lower() not in STOPWORDS
    }


def _modifier_mask(text: str, named: set[str]) -> np.ndarray:
    """`mask[c]` is true where character c ends a word that runs straight into one of the
    `named` words (only spaces between): the word modifies the name ("basketball player
    Brittney Griner")."""
    mask = np.zeros(len(text) + 1, dtype=bool)
    found = words(text)
    is_name = [w.group()[:1].isupper() and stem(w.group()) in named for w in found]
    for i in range(1, len(found)):
        before, word = found[i - 1], found[i]
        adjacent = not text[before.end() : word.start()].strip()
        if is_name[i] and not is_name[i - 1] and adjacent:
            mask[before.end() - 1] = True
    return mask


def _echo_mask(text: str, asked: set[str]) -> np.ndarray:
    """`mask[c]` is true where character c lies in a word whose stem is one of `asked`."""
    mask = np.zeros(len(text) + 1, dtype=bool)
    for word in words(text):
        if word.group().lower() not in STOPWORDS and stem(word.group()) in asked:
            mask[word.start() : word.end()] = True
    return mask


def _torch_runner(model: Any) -> Any:
    import torch

    device = next(model.parameters()).device

    def run(feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            inputs = {k: torch.from_numpy(v).to(device) for k, v in feed.items()}
            out = model(**inputs, return_dict=True)
        return out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()

    return run


def model_card(model_dir: Path | str) -> dict[str, Any]:
    """The training summary shipped beside a model (training.json), or {}."""
    path = Path(model_dir) / "training.json"
    return json.loads(path.read_text("utf-8")) if path.is_file() else {}
