"""ONNX exports of models, kept on disk so that a new process does not export them again.

An export is keyed by the model's files (path, size, modification time), by the versions of
the libraries that made it and by what the caller adds (input names, options). It is written
under a temporary name and renamed, with a JSON record of its key and SHA-256; a load checks
both and exports again when either differs, so a stale or damaged file is never run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from qa.files import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

_LIBRARIES = ("torch", "transformers", "onnx", "onnxruntime")
# How `export_module` traces attention; part of every key, so a change re-exports.
_ATTENTION = "eager"


def cache_dir() -> Path:
    """`$QA_CACHE_DIR`, else `$XDG_CACHE_HOME/qa-assistant`, else `~/.cache/qa-assistant`."""
    if os.environ.get("QA_CACHE_DIR"):
        return Path(os.environ["QA_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qa-assistant"


def model_key(kind: str, files: Iterable[Path], extra: Mapping[str, Any] | None = None) -> str:
    """A short hex key that changes whenever a model file or a relevant library changes."""
    described = []
    for path in sorted(Path(f).resolve() for f in files):
        stat = path.stat()
        described.append([str(path), stat.st_size, stat.st_mtime_ns])
    versions: dict[str, str | None] = {}
    for library in _LIBRARIES:
        try:
            versions[library] = metadata.version(library)
        except metadata.PackageNotFoundError:
            versions[library] = None
    key = {
        "kind": kind,
        "files": described,
        "libraries": versions,
        "attention": _ATTENTION,
        "extra": dict(extra or {}),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def cached_export(key: str, export: Callable[[], bytes], *, folder: Path | None = None) -> bytes:
    """The ONNX bytes stored under `key`, or `export()`'s, stored for next time.

    A cache that cannot be written (read-only home, full disk) costs the next process an
    export, nothing more.
    """
    folder = folder or cache_dir() / "onnx"
    model, record = folder / f"{key}.onnx", folder / f"{key}.json"
    try:
        expected = json.loads(record.read_text("utf-8"))["sha256"]
        data = model.read_bytes()
        if hashlib.sha256(data).hexdigest() == expected:
            return data
        log.warning("ONNX cache %s is damaged; exporting again", model)
    except (OSError, ValueError, KeyError, TypeError):
        pass  # not cached yet, or the record is unreadable: export
    data = export()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(model, data)
        digest = hashlib.sha256(data).hexdigest()
        atomic_write_text(record, json.dumps({"key": key, "sha256": digest}))
    except OSError as error:
        log.warning("could not cache the ONNX export in %s: %s", folder, error)
    return data


def export_module(
    module: Any, probe: tuple[Any, ...], inputs: Sequence[str], outputs: Sequence[str]
) -> bytes:
    """A PyTorch module as ONNX bytes (TorchScript exporter, opset 17), batch and token axes
    dynamic on every input and output, its transformers traced with eager attention."""
    import torch

    axes = {name: {0: "batch", 1: "tokens"} for name in (*inputs, *outputs)}
    with tempfile.TemporaryDirectory(prefix="qa-onnx-") as folder:
        target = Path(folder) / "model.onnx"
        with torch.no_grad(), warnings.catch_warnings(), eager_attention(module):
            warnings.simplefilter("ignore")  # tracer notes about Python control flow
            torch.onnx.export(
                module.eval(),
                probe,
                str(target),
                input_names=list(inputs),
                output_names=list(outputs),
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        return target.read_bytes()


@contextmanager
def eager_attention(module: Any) -> Iterator[None]:
    """Switch the transformers inside `module` to plain (eager) attention for a while.

    Traced, the explicit matrix products and softmax of eager attention run about a fifth
    faster in ONNX Runtime on CPU than the graph traced from PyTorch's fused SDPA attention,
    with the same outputs (MiniLM-L6 passages: 43.4 against 36.5 a second, cosine 1.000000).
    """
    models = [m for m in module.modules() if hasattr(m, "set_attn_implementation")]
    before = [m.config._attn_implementation for m in models]
    for model in models:
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        for model, implementation in zip(models, before, strict=True):
            model.set_attn_implementation(implementation)


def quantized_int8(model: bytes, *, keep: Sequence[str] = ()) -> bytes:
    """`model` with the weights of its matrix products quantized to int8, one scale per output
    channel (ONNX Runtime dynamic quantization: activations are quantized on the fly), except
    the nodes named in `keep`, which stay fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()

    def quiet(record: logging.LogRecord) -> bool:  # its advice to pre-process, on every call
        return not str(record.msg).startswith("Please consider to run pre-processing")

    with tempfile.TemporaryDirectory(prefix="qa-onnx-") as folder:
        source, target = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        source.write_bytes(model)
        root.addFilter(quiet)
        try:
            quantize_dynamic(
                str(source),
                str(target),
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul"],
                nodes_to_exclude=list(keep),
            )
        finally:
            root.removeFilter(quiet)
        return target.read_bytes()
