"""`qa train-reader`: a few real training steps on a tiny SQuAD-format file, through the CLI.

The real bundled model is fine-tuned (with short windows and tiny batches, so each step takes
a fraction of a second): checkpoints are written and resumed, a resumed run ends with the very
weights of an uninterrupted one, and the finished model loads in the product's reader.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qa.reading import TrainedReader
from qa.training.reader import CHECKPOINTS, LATEST
from qa.training.squad import exact_match, f1, held_out_articles, load_examples

pytestmark = pytest.mark.integration

FACTS = [
    ("Lumbridge", "The bridge in {t} reopened on Tuesday after repairs.", "When did it reopen?"),
    ("Varrock", "Engineers from {t} worked on the bridge for eleven weeks.", "How long?"),
    ("Falador", "The mayor of {t} thanked the council for its patience.", "Whom did he thank?"),
    ("Kandarin", "Fishing boats in {t} returned early because of the storm.", "Why?"),
]
ANSWERS = ["on Tuesday", "eleven weeks", "the council", "because of the storm"]


def tiny_squad(path: Path) -> Path:
    data = []
    for (title, template, question), answer in zip(FACTS, ANSWERS, strict=True):
        context = template.format(t=title)
        qas = [
            {
                "id": f"{title}-{i}",
                "question": f"{question} ({title} {i})",
                "answers": [{"text": answer, "answer_start": context.index(answer)}],
            }
            for i in range(3)
        ]
        data.append({"title": title, "paragraphs": [{"context": context, "qas": qas}]})
    path.write_text(json.dumps({"version": "1.1", "data": data}), encoding="utf-8")
    return path


def train(data: Path, output: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    result = run_training(data, output, *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def run_training(data: Path, output: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "qa.training.reader",
        "--data",
        str(data),
        "--output",
        str(output),
        "--max-length",
        "48",
        "--stride",
        "16",
        "--batch-size",
        "4",
        "--epochs",
        "2",
        "--checkpoint-minutes",
        "0",
        *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def state(output: Path) -> dict:
    pointer = json.loads((output / CHECKPOINTS / LATEST).read_text())
    return json.loads((output / CHECKPOINTS / pointer["folder"] / "state.json").read_text())


def weights(folder: Path, name: str = "model") -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / f"{name}.safetensors"))


def test_squad_examples_split_by_article(tmp_path: Path) -> None:
    data = tiny_squad(tmp_path / "tiny.json")
    examples = load_examples(data)
    assert len(examples) == 12
    for example in examples:
        start = example.answer_starts[0]
        assert example.context[start : start + len(example.answers[0])] == example.answers[0]
    assert held_out_articles([t for t, _, _ in FACTS]) == ["Falador"]  # every 4th by name
    assert exact_match("The council.", ["the council"]) == 1.0
    assert f1("the town council", ["the council"]) == pytest.approx(2 / 3)  # articles dropped


def test_checkpoint_resume_and_export(tmp_path: Path) -> None:
    data = tiny_squad(tmp_path / "tiny.json")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"

    first = train(data, resumed, "--max-steps", "2", "--average-epochs", "2")
    assert "training on 12 questions" in first.stderr
    assert state(resumed)["progress"]["step"] == 2
    assert not (resumed / "model.safetensors").exists(), "not finished yet"

    second = train(data, resumed, "--average-epochs", "2")
    assert "resumed from" in second.stderr and "at step 2/6" in second.stderr
    assert state(resumed)["progress"]["step"] == 6
    train(data, straight, "--average-epochs", "2")

    # Interrupted and resumed, the run ends where an uninterrupted one does: up to the order of
    # multi-threaded float sums (CPU embedding gradients), far closer than one epoch moves it.
    one, other = weights(straight), weights(resumed)
    assert one.keys() == other.keys()
    first_epoch = weights(straight / "epochs", "epoch-1")
    apart = sum(float((one[n].float() - other[n].float()).square().sum()) for n in one) ** 0.5
    moved = sum(float((one[n].float() - first_epoch[n].float()).square().sum()) for n in one)
    assert moved > 0 and apart <= 0.01 * moved**0.5, (apart, moved**0.5)
    assert {p.name for p in (resumed / CHECKPOINTS).iterdir()} == {LATEST, "step-0000006"}

    # The exported weights are the mean of the two epochs' end weights (in fp16).
    epochs = [weights(resumed / "epochs", f"epoch-{n}") for n in (1, 2)]
    for name, value in one.items():
        mean = (epochs[0][name] + epochs[1][name]) / 2
        assert (value.float() - mean).abs().max() <= 1e-2 * (1 + mean.abs().max()), name
    assert not (epochs[0]["qa_outputs.weight"] == epochs[1]["qa_outputs.weight"]).all()

    card = json.loads((resumed / "training.json").read_text())
    assert card["steps"] == 6 and len(card["mean_loss_per_epoch"]) == 2
    assert str(one["qa_outputs.weight"].dtype) == "torch.float16"
    assert TrainedReader.present(resumed)
    context = "Engineers from Varrock worked on the bridge for eleven weeks."
    (span,) = TrainedReader(resumed).read("How long did the engineers work?", [context])
    assert span is not None and 0 <= span.start < span.end <= len(context)


def test_holdout_judges_every_epoch_and_other_settings_do_not_resume(tmp_path: Path) -> None:
    data = tiny_squad(tmp_path / "tiny.json")
    output = tmp_path / "holdout"
    result = train(data, output, "--holdout", "--max-steps", "1")
    assert "training on 9 questions" in result.stderr
    assert "judging on 3 held-out questions" in result.stderr
    result = train(data, output, "--holdout")
    assert "epoch 1: held-out EM" in result.stderr and "epoch 2: held-out EM" in result.stderr
    assert len(json.loads((output / "training.json").read_text())["held_out_per_epoch"]) == 2

    refused = run_training(data, output, "--holdout", "--learning-rate", "1e-3")
    assert refused.returncode != 0
    assert "other settings" in refused.stderr and "learning_rate" in refused.stderr


def test_all_answers_are_learned_as_one_marginal_likelihood() -> None:
    import torch

    from qa.training.reader import TrainingConfig, Window, gold_spans, marginal_span_loss, windows
    from qa.training.squad import Example

    start_logits, end_logits = torch.randn(3, 40), torch.randn(3, 40)
    first = [Window([0] * 40, [0] * 40, s, e, ((s, e),)) for s, e in [(3, 4), (7, 9), (0, 0)]]
    single = (
        torch.nn.functional.cross_entropy(start_logits, torch.tensor([3, 7, 0]))
        + torch.nn.functional.cross_entropy(end_logits, torch.tensor([4, 9, 0]))
    ) / 2
    loss = marginal_span_loss(start_logits, end_logits, *gold_spans(first))
    assert float(loss) == pytest.approx(float(single), rel=1e-5)
    # A second gold span of the first window can only make the gold more likely.
    both = [Window([0] * 40, [0] * 40, 3, 4, ((3, 4), (5, 6))), *first[1:]]
    assert float(marginal_span_loss(start_logits, end_logits, *gold_spans(both))) < float(loss)

    from transformers import AutoTokenizer

    from qa.training.reader import base_model_path

    tokenizer = AutoTokenizer.from_pretrained(base_model_path("default"))
    context = "The bridge in Lumbridge reopened on Tuesday after repairs."
    example = Example(
        "Lumbridge",
        "When did it reopen?",
        context,
        ("on Tuesday", "Tuesday", "Tuesday"),
        (context.index("on Tuesday"), context.index("Tuesday"), context.index("Tuesday")),
    )
    config = TrainingConfig(data="", output="", all_answers=True)
    (window,) = windows(tokenizer, [example], config)
    assert len(window.spans) == 2 and window.spans[0] == (window.start, window.end)
    for start, end in window.spans:
        text = tokenizer.decode(window.input_ids[start : end + 1])
        assert text in ("on tuesday", "tuesday")
    (plain,) = windows(tokenizer, [example], TrainingConfig(data="", output=""))
    assert plain.spans == () and (plain.start, plain.end) == window.spans[0]


def test_moving_average_is_checkpointed_resumed_and_exported(tmp_path: Path) -> None:
    data = tiny_squad(tmp_path / "tiny.json")
    output = tmp_path / "ema"
    fast = ("--all-answers", "--ema", "0.5", "--learning-rate", "5e-3")  # steps that show
    train(data, output, *fast, "--max-steps", "3")
    pointer = json.loads((output / CHECKPOINTS / LATEST).read_text())["folder"]
    assert (output / CHECKPOINTS / pointer / "average.safetensors").exists()
    result = train(data, output, *fast)
    assert "at step 3/6" in result.stderr

    # The exported model is the moving average, not the last step's weights.
    final = state(output)
    assert final["progress"]["step"] == 6
    folder = (
        output / CHECKPOINTS / json.loads((output / CHECKPOINTS / LATEST).read_text())["folder"]
    )
    average, last, exported = (
        weights(folder, "average"),
        weights(folder, "model"),
        weights(output),
    )
    name = "qa_outputs.weight"
    apart = (last[name] - average[name]).abs().max()
    assert (exported[name].float() - average[name]).abs().max() <= 0.05 * apart


def test_distillation_loss_compares_real_tokens_only() -> None:
    import torch

    from qa.training.reader import distillation_loss

    teacher = torch.tensor([[2.0, 0.5, -1.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    same = distillation_loss(teacher, teacher, teacher, teacher, mask, 2.0)
    assert same.abs() < 1e-6
    padding_differs = teacher.clone()
    padding_differs[0, 3] = 9.0  # a padded position: not compared
    assert distillation_loss(padding_differs, teacher, teacher, teacher, mask, 2.0).abs() < 1e-6
    other = torch.tensor([[-1.0, 0.5, 2.0, 0.0]])
    assert distillation_loss(other, other, teacher, teacher, mask, 2.0) > 0.1


def test_distillation_reads_the_teachers_once_and_resumes(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from qa.training.reader import TEACHER_LOGITS

    data = tiny_squad(tmp_path / "tiny.json")
    teacher = tmp_path / "teacher"
    train(data, teacher, "--learning-rate", "5e-3")
    student = tmp_path / "student"
    distil = ("--teachers", str(teacher), "--distil-weight", "0.7")
    first = train(data, student, *distil, "--max-steps", "2")
    assert "teacher" in first.stderr and "reading 12 windows" in first.stderr
    saved = load_file(str(student / TEACHER_LOGITS))

    # The stored logits are the teacher's own on the first window.
    tokenizer = AutoTokenizer.from_pretrained(str(teacher))
    model = AutoModelForQuestionAnswering.from_pretrained(str(teacher), dtype=torch.float32)
    question, context = "When did it reopen? (Lumbridge 0)", FACTS[0][1].format(t="Lumbridge")
    encoded = tokenizer(question, context, return_tensors="pt")
    with torch.no_grad():
        logits = model(**encoded).start_logits[0]
    n = int(saved["lengths"][0])
    assert n == encoded["input_ids"].shape[1]
    assert torch.allclose(saved["start"][:n], logits, atol=0.15, rtol=0.02)

    resumed = train(data, student, *distil)
    assert "at step 2/6" in resumed.stderr and "reading" not in resumed.stderr
    assert TrainedReader(student).read(question, [context])[0] is not None
    other = run_training(data, student, "--teachers", str(teacher), "--distil-weight", "0.2")
    assert other.returncode != 0 and "distil_weight" in other.stderr
