"""The on-disk cache of ONNX exports: keyed by the model's files, checked on load."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qa.onnx_cache import cache_dir, cached_export, eager_attention, model_key


def counting_export(data: bytes):
    calls = []

    def export() -> bytes:
        calls.append(1)
        return data

    return export, calls


def test_the_key_follows_the_model_files(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"one")
    key = model_key("reader", [weights])
    assert key == model_key("reader", [weights])
    assert key != model_key("encoder", [weights])
    assert key != model_key("reader", [weights], {"opset": 18})
    weights.write_bytes(b"three")  # another size
    assert model_key("reader", [weights]) != key
    changed = model_key("reader", [weights])
    os.utime(weights, ns=(1, 1))  # same size, another modification time
    assert model_key("reader", [weights]) != changed


def test_an_export_is_made_once_and_read_back(tmp_path: Path) -> None:
    export, calls = counting_export(b"onnx bytes")
    assert cached_export("k1", export, folder=tmp_path) == b"onnx bytes"
    assert cached_export("k1", export, folder=tmp_path) == b"onnx bytes"
    assert len(calls) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k1.json", "k1.onnx"]


@pytest.mark.parametrize("damage", ["truncated", "record", "missing record"])
def test_a_damaged_export_is_made_again(tmp_path: Path, damage: str, caplog) -> None:
    export, calls = counting_export(b"onnx bytes")
    cached_export("k1", export, folder=tmp_path)
    if damage == "truncated":
        (tmp_path / "k1.onnx").write_bytes(b"onnx")
    elif damage == "record":
        (tmp_path / "k1.json").write_text("{not json")
    else:
        (tmp_path / "k1.json").unlink()
    assert cached_export("k1", export, folder=tmp_path) == b"onnx bytes"
    assert len(calls) == 2
    assert (tmp_path / "k1.onnx").read_bytes() == b"onnx bytes"
    if damage == "truncated":
        assert "damaged" in caplog.text


def test_an_unwritable_cache_costs_only_the_export(tmp_path: Path, caplog) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the folder should be")
    export, calls = counting_export(b"onnx bytes")
    assert cached_export("k1", export, folder=blocked / "onnx") == b"onnx bytes"
    assert cached_export("k1", export, folder=blocked / "onnx") == b"onnx bytes"
    assert len(calls) == 2
    assert "could not cache" in caplog.text


def test_the_cache_folder_is_configurable(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("QA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "qa-assistant"


def test_attention_is_traced_eager_and_put_back() -> None:
    """Exports trace plain attention (faster in ONNX Runtime than the traced SDPA graph) and
    leave the PyTorch model as they found it."""
    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        attn_implementation="sdpa",
    )
    model = torch.nn.Sequential(BertForQuestionAnswering(config))
    inner = model[0]
    with eager_attention(model):
        assert inner.config._attn_implementation == "eager"
        assert inner.bert.config._attn_implementation == "eager"
    assert inner.config._attn_implementation == "sdpa"
    assert inner.bert.config._attn_implementation == "sdpa"
