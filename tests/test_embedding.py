"""Query vectors (ONNX Runtime and PyTorch agree) and sentence vectors pooled from passages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa.chunking import Chunker
from qa.embedding import SentenceTransformerEmbedder
from qa.indexing import build_index
from qa.sentences import split_sentences
from qa.store import IndexReader
from tests.conftest import FakeEmbedder

PASSAGE = (
    "Blinken and Lavrov spoke on the sidelines of the G20 meeting in New Delhi. "
    "The encounter lasted around ten minutes. "
    "Fishing boats returned early because of the storm."
)
AWKWARD_TEXTS = [
    PASSAGE,
    "Short.",
    "Café 😀 talks in Zürich 🇺🇦 ended. " * 3,
    "word " * 400 + "Tail.",
]


def test_each_sentence_vector_is_its_own_words_in_the_index(tmp_path: Path) -> None:
    """With the bag-of-words fake, a sentence pooled inside its chunk is exactly its words, so
    the stored vector must belong to that sentence and no other.
    """
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Title\n\n" + PASSAGE + "\n\n" + PASSAGE.upper())
    embedder = FakeEmbedder()
    chunker = Chunker(embedder.count_tokens, chunk_tokens=12, overlap_tokens=2)
    build_index(corpus, tmp_path / "index", embedder, chunker)
    reader = IndexReader.open(tmp_path / "index")
    article = reader.articles()[0]
    sentences = split_sentences(article.text)
    vectors = reader.sentence_vectors_for([("a.txt", start) for start, _ in sentences])
    for (start, end), vector in zip(sentences, vectors, strict=True):
        chunks = reader.query(
            'SELECT start, "end" FROM chunks WHERE start <= ? AND "end" >= ?', (start, end)
        )
        if chunks:  # held whole by some chunk: pooled from exactly its own words
            expected = embedder.embed_query(article.text[start:end])
            # Stored as fp16 rows: equal up to half precision.
            assert np.allclose(vector, expected, atol=1e-3), article.text[start:end]
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-3)
    assert reader.manifest.sentence_vectors >= len(sentences)


@pytest.mark.integration
def test_onnx_query_vectors_match_pytorch(real_embedder: SentenceTransformerEmbedder) -> None:
    torch_only = SentenceTransformerEmbedder(runtime="torch")
    for question in ["Where did they meet?", "How many of the 20 nations agreed?", "é ü 北京 ?"]:
        onnx = real_embedder.embed_query(question)
        assert real_embedder._onnx is not None  # the fast path really ran
        assert float(onnx @ torch_only.embed_query(question)) > 0.9999


@pytest.mark.integration
def test_pooled_sentence_vectors_on_the_real_model(
    real_embedder: SentenceTransformerEmbedder,
) -> None:
    spans = split_sentences(PASSAGE)
    assert len(spans) == 3
    assert PASSAGE[spans[1][0] : spans[1][1]] == "The encounter lasted around ten minutes."
    passages, pooled = real_embedder.embed_passages([PASSAGE, "Short."], [spans, [(0, 6)]])
    assert np.allclose(passages, real_embedder.embed_documents([PASSAGE, "Short."]), atol=1e-5)
    assert pooled[0].shape == (3, real_embedder.dimension) and pooled[1].shape[0] == 1
    assert np.allclose(np.linalg.norm(pooled[0], axis=1), 1.0, atol=1e-5)
    # Each question is closest to the sentence that answers it, not to its neighbours.
    for question, best in [
        ("How long did the meeting last?", 1),
        ("Where was the G20 meeting held?", 0),
        ("Why did the boats come back?", 2),
    ]:
        assert int(np.argmax(pooled[0] @ real_embedder.embed_query(question))) == best
    # A span past the model's 256-token input has no tokens: it falls back to the passage.
    long_text = "word " * 400 + "The tail."
    tail = (len(long_text) - 9, len(long_text))
    passage, (rows,) = real_embedder.embed_passages([long_text], [[tail]])
    assert np.allclose(rows[0], passage[0])


def test_runtime_is_checked() -> None:
    with pytest.raises(ValueError, match="runtime"):
        SentenceTransformerEmbedder(runtime="tensorflow")


@pytest.mark.integration
def test_a_model_onnx_cannot_run_falls_back_to_pytorch(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import qa.embedding

    def refuse(folder, model, **options):
        raise RuntimeError("export not supported")

    monkeypatch.setattr(qa.embedding, "OnnxEncoder", refuse)
    embedder = SentenceTransformerEmbedder()
    with caplog.at_level("WARNING", logger="qa.embedding"):
        vector = embedder.embed_query("Where did they meet?")
    assert embedder._onnx is None
    assert "PyTorch" in caplog.text and "export not supported" in caplog.text
    plain = SentenceTransformerEmbedder(runtime="torch")
    expected = plain.embed_query("Where did they meet?")
    assert np.allclose(vector, expected, atol=1e-6)


@pytest.mark.integration
def test_the_onnx_export_is_cached_and_a_new_process_needs_no_pytorch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    import qa.embedding

    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path))
    question = "Where did they meet?"
    first = SentenceTransformerEmbedder().embed_query(question)
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 1

    # A second embedder reads the export from disk: exporting again would fail here.
    def no_export(model):
        raise AssertionError("exported again")

    monkeypatch.setattr(qa.embedding, "export_transformer", no_export)
    second = SentenceTransformerEmbedder()
    assert np.allclose(second.embed_query(question), first, atol=1e-6)
    assert second._onnx is not None

    probe = (
        "import sys, json; from qa.embedding import SentenceTransformerEmbedder; "
        f"v = SentenceTransformerEmbedder().embed_query({question!r}); "
        "print(json.dumps({'torch': 'torch' in sys.modules, 'v': [float(x) for x in v]}))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    result = json.loads(shown.stdout)
    assert result["torch"] is False
    assert np.allclose(result["v"], first, atol=1e-6)


@pytest.mark.integration
def test_onnx_passages_sentences_and_token_counts_match_pytorch(
    real_embedder: SentenceTransformerEmbedder,
) -> None:
    """Passages embedded by ONNX Runtime need no rebuild of an index PyTorch built."""
    torch_only = SentenceTransformerEmbedder(runtime="torch", passage_precision="fp32")
    onnx = SentenceTransformerEmbedder(passage_precision="fp32")
    texts = AWKWARD_TEXTS
    spans = [split_sentences(t) or [(0, len(t))] for t in texts]
    onnx_passages, onnx_pooled = onnx.embed_passages(texts, spans)
    assert onnx._onnx is not None  # the fast path really ran
    torch_passages, torch_pooled = torch_only.embed_passages(texts, spans)
    assert np.all(np.sum(onnx_passages * torch_passages, axis=1) > 0.9999)
    for mine, theirs in zip(onnx_pooled, torch_pooled, strict=True):
        assert mine.shape == theirs.shape
        assert np.all(np.sum(mine * theirs, axis=1) > 0.9999)
    for text in texts:
        assert real_embedder.count_tokens(text) == torch_only.count_tokens(text)
    assert real_embedder.max_tokens == torch_only.max_tokens == 254
    assert real_embedder.dimension == torch_only.dimension == 384


@pytest.mark.integration
def test_bf16_passages_need_no_rebuild_of_an_fp32_index() -> None:
    """Passages embedded with bfloat16 products (the default on a CPU that has them) agree
    with fp32's, passages and sentences, to a cosine of 0.9999; queries stay fp32."""
    bf16 = SentenceTransformerEmbedder(passage_precision="bf16")
    fp32 = SentenceTransformerEmbedder(passage_precision="fp32")
    assert bf16.passages_in_bf16() and not fp32.passages_in_bf16()
    spans = [split_sentences(t) or [(0, len(t))] for t in AWKWARD_TEXTS]
    passages, pooled = bf16.embed_passages(AWKWARD_TEXTS, spans)
    expected_passages, expected_pooled = fp32.embed_passages(AWKWARD_TEXTS, spans)
    cosines = np.sum(passages * expected_passages, axis=1)
    assert np.all(cosines > 0.9999) and not np.all(cosines > 0.9999999)  # bf16 really ran
    for mine, theirs in zip(pooled, expected_pooled, strict=True):
        assert mine.shape == theirs.shape
        assert np.all(np.sum(mine * theirs, axis=1) > 0.9999)
    documents = bf16.embed_documents(AWKWARD_TEXTS)
    assert np.allclose(documents, passages, atol=1e-6)
    question = "Where did they meet?"
    assert np.allclose(bf16.embed_query(question), fp32.embed_query(question), atol=1e-6)


def test_passage_precision_is_checked_and_auto_follows_the_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import qa.embedding

    with pytest.raises(ValueError, match="passage_precision"):
        SentenceTransformerEmbedder(passage_precision="fp16")
    for native in (True, False):
        monkeypatch.setattr(qa.embedding, "cpu_multiplies_bf16", lambda native=native: native)
        assert SentenceTransformerEmbedder().passages_in_bf16() is native
        assert SentenceTransformerEmbedder(passage_precision="bf16").passages_in_bf16()
        assert not SentenceTransformerEmbedder(passage_precision="fp32").passages_in_bf16()
        on_gpu = SentenceTransformerEmbedder(device="cuda", passage_precision="bf16")
        assert not on_gpu.passages_in_bf16()  # bf16 autocast is for the CPU path


@pytest.mark.integration
def test_a_small_update_does_not_load_pytorch_for_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    import qa.embedding

    def not_asked() -> bool:
        raise AssertionError("asking the CPU imports PyTorch")

    monkeypatch.setattr(qa.embedding, "cpu_multiplies_bf16", not_asked)
    embedder = SentenceTransformerEmbedder()
    spans = [split_sentences(t) or [(0, len(t))] for t in AWKWARD_TEXTS]
    embedder.embed_passages(AWKWARD_TEXTS, spans)
    assert embedder._model is None and embedder._onnx is not None
    monkeypatch.setattr(qa.embedding, "cpu_multiplies_bf16", lambda: True)
    many = ["Fishing boats returned early."] * qa.embedding.BF16_MIN_PASSAGES
    embedder.embed_passages(many, [[]] * len(many))
    assert embedder._model is not None  # a big build loads PyTorch, and keeps using it


@pytest.mark.integration
def test_token_counts_by_word_equal_whole_encodes(real_embedder: SentenceTransformerEmbedder):
    """The build counts a piece's tokens word by word (remembering words): on real articles
    and awkward text the count is the tokenizer's own for the whole piece."""
    from tests.conftest import DEFAULT_CORPUS

    real_embedder.count_tokens("warm")
    encoder = real_embedder._onnx
    assert encoder is not None and encoder._word_local
    texts = [path.read_text("utf-8") for path in sorted(DEFAULT_CORPUS.iterdir())]
    texts += [
        PASSAGE,
        "naïve café — “quoted”\u00a0text\twith tabs\nand lines",
        "日本語のテキスト mixed with English",
        "zero\u200bwidth, control\x07char, emoji 🎉🇺🇦, U.S.-led 3.5% (approx.)",
    ]
    pieces = [t[i : i + 97] for t in texts for i in range(0, len(t), 61)]
    for text in [*texts, *pieces]:
        whole = len(encoder._counter.encode(text, add_special_tokens=False).ids)
        assert real_embedder.count_tokens(text) == whole, text


def test_only_tokenizers_that_split_at_whitespace_are_counted_by_word() -> None:
    from qa.embedding import _splits_at_whitespace

    bert = {
        "normalizer": {"type": "BertNormalizer"},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
    }
    assert _splits_at_whitespace(bert)
    sentencepiece = {"normalizer": None, "pre_tokenizer": {"type": "Metaspace"}}
    assert not _splits_at_whitespace(sentencepiece)
    replacing = {
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Replace"}]},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
    }
    assert not _splits_at_whitespace(replacing)
