"""The training loop: one function, read top to bottom.

    history = rnnlab.train(model, task, config)

Each pass of the loop is one optimiser update on one window of one batch (whole sequences, or the k1-step
windows of truncated BPTT, see tbptt.py): forward and backward, guard, clip, update, log, evaluate,
checkpoint, stop. Everything goes to the run folder (run.py), which the run holds locked (lock.py); a run
resumes exactly from a checkpoint, with any changed settings on top (resume.py). Ctrl-C or SIGTERM ends the
step, writes a checkpoint and the summary and raises `Interrupted` (signals.py); a folder left at any
instant can go on, by --resume or, if no step was completed, by starting it again.
"""

from __future__ import annotations

import contextlib
import copy
import math
import signal
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau

from rnnlab.errors import CheckpointError, ConfigError, Interrupted
from rnnlab.numerics import flush_denormals
from rnnlab.tasks.base import Task, describe
from rnnlab.training import checkpoint, clipping, record, tbptt
from rnnlab.training.build import (
    Scheduler,
    build_model,
    build_optimizer,
    build_scheduler,
    current_lr,
    resolve_device,
    scale_lr,
    seed_everything,
    set_hyper_parameters,
    step_schedule,
)
from rnnlab.training.checkpoint import Checkpoints
from rnnlab.training.config import DiagnosticsConfig, OptimConfig, TrainConfig, load, to_dict, validate
from rnnlab.training.diagnostics import TrainingDiagnostics
from rnnlab.training.distributed import World, carried
from rnnlab.training.evaluate import Best, check_metric, evaluate
from rnnlab.training.guard import Guard, nonfinite_weights
from rnnlab.training.precision import Precision
from rnnlab.training.progress import ProgressBar
from rnnlab.training.resume import (
    apply_changes,
    changes,
    check_kept,
    checkpoint_and_folder,
    finished,
    how_to_resume,
    load_checkpoint,
)
from rnnlab.training.run import RunDir, ShadowRunDir, default_folder
from rnnlab.training.signals import Interrupts


@dataclass
class History:
    """What a run logged (from its metrics.jsonl, across resumes) and its summary."""

    run_dir: Path
    train: list[dict[str, Any]] = field(default_factory=list)
    val: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class State:
    """Everything a checkpoint holds besides the config: enough to continue exactly."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Scheduler
    clipper: clipping.Clipper
    guard: Guard
    best: Best
    step: int = 0
    position: tuple[int, int, int] | None = None  # (epoch, batch, window) of the last update
    carry: tbptt.Carry = field(default_factory=tbptt.Carry)
    world: World = field(default_factory=World)
    precision: Precision | None = None

    def snapshot(self, config: TrainConfig, task: Task) -> dict[str, Any]:
        """The checkpoint payload: tensors and plain values only. Distributed, every rank calls it: the
        carried state is the whole batch's (every rank's rows) and each rank's random state is kept."""
        state, context = carried(self.world, self.carry.state, self.carry.context)
        ranks = self.world.gather_objects(checkpoint.rng_state()) if self.world.distributed else None
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "clipper": self.clipper.state_dict(),
            "guard": self.guard.state_dict(),
            "best": self.best.state_dict(),
            "rng": checkpoint.rng_state(),
            "step": self.step,
            "position": list(self.position) if self.position else None,
            "carry": {"state": state, "context": context},
            **({"rng_ranks": ranks} if ranks else {}),
            "precision": self.precision.state_dict() if self.precision else {},
            "config": to_dict(config),
            "task": describe(task),
            "model_settings": record.describe_model(self.model),  # what a resume must keep (resume.py)
        }

    def restore(
        self, path: Path, config: TrainConfig, task: Task, device: torch.device
    ) -> dict[str, tuple[Any, Any]]:
        """Continue from checkpoint `path` with `config`'s changed settings on top (resume.py); returns them,
        name -> (old, new). One that does not fit the task, model or optimiser is an error here, before the
        run folder is touched."""
        payload = load_checkpoint(path)
        check_kept(payload, path, config, task, self.model)
        changed = changes(payload["config"], config)
        try:
            self.model.load_state_dict(payload["model"])
        except RuntimeError as e:  # torch lists every mismatch on its own line: name the first
            lines = str(e).splitlines()
            raise CheckpointError(
                f"{path} does not fit the model ({lines[min(1, len(lines) - 1)].strip()}); "
                "a resumed run keeps the model it was trained with"
            ) from None
        self.optimizer.load_state_dict(payload["optimizer"])
        plateau = isinstance(self.scheduler, ReduceLROnPlateau)
        same_kind = (payload["config"].get("schedule", {}).get("name") == "plateau") == plateau
        if same_kind and not (plateau and {"eval.metric", "eval.mode"} & changed.keys()):
            self.scheduler.load_state_dict(payload["scheduler"])  # else the schedule starts afresh
        self.clipper.load_state_dict(payload["clipper"])
        self.guard.load_state_dict(payload["guard"])
        self.best.load_state_dict(payload["best"])
        if self.precision is not None:
            self.precision.load_state_dict(payload.get("precision") or {})  # fp16: the loss scale
        ranks = payload.get("rng_ranks") or []
        checkpoint.set_rng_state(ranks[self.world.rank] if len(ranks) == self.world.size else payload["rng"])
        self.step = int(payload["step"])
        self.position = tuple(payload["position"]) if payload["position"] else None
        whole = payload["carry"]  # the whole batch's: this rank carries its own rows of it
        shard = self.world.shard_rows
        mine = tbptt.Carry(shard(whole["state"], 1), shard(whole["context"], 0))
        self.carry = tbptt.to_device(mine, device)
        apply_changes(changed, config, self.optimizer, self.scheduler, self.best, self.step)
        return changed

    def roll_back(self, path: Path, factor: float, optim: OptimConfig) -> int:
        """Reload the weights and optimiser state of checkpoint `path`, lower the lr; returns its step.

        The step counter and the data stream go on (the batches that failed are not replayed); the
        hyper-parameters stay `optim`'s (a checkpoint from before a resume with changes has the old ones)."""
        payload = checkpoint.load(path)
        lrs = [group["lr"] for group in self.optimizer.param_groups]
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        set_hyper_parameters(self.optimizer, optim)
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        scale_lr(self.optimizer, self.scheduler, factor)
        self.carry = tbptt.Carry()
        return int(payload["step"])


def train(
    model: nn.Module,
    task: Task,
    config: TrainConfig | None = None,
    *,
    resume: str | Path | None = None,
    progress: bool = True,
    label: str = "train",
    quiet: bool = False,
) -> History:
    """Train `model` on `task` as `config` says, writing a run folder; returns the history.

    Args:
        model: a module with `forward_with_state(x, state, lengths) -> (y, state)` on batch-first inputs,
            such as `rnnlab.SequenceModel` (built with the task's input_size, output_size and output).
        task: batches, loss and metrics (`rnnlab.tasks.Task`).
        config: a `TrainConfig` (defaults for None; with `resume`, None means the run's own config.toml).
        resume: a run folder (continue from its latest checkpoint) or a checkpoint file in one; the run goes
            on up to `config.steps`, with the settings of `config` that differ from the checkpoint's applied
            on top (see resume.py; the model, task, optimiser name, seed and bptt must not differ).
        progress: show a progress bar.
        label: the progress bar's label (`rnnlab compare` names the run there).
        quiet: print nothing, not even the lines said above the bar (verdicts, warnings, rollbacks); the
            run folder records them all the same (`diagnostics.jsonl`, `events.jsonl`).

    Raises:
        Interrupted: on SIGINT (Ctrl-C) or SIGTERM, after the step, a checkpoint and the summary are written
            (a second signal: at once); its message says how to resume.
        RunFolderError: when another process writes the run folder (its PID named), among the UserErrors.

    Denormal floats are flushed to zero on the CPU for the run (`numerics.flush_denormal`, see
    `rnnlab.numerics`); the caller's setting is restored when it returns.
    """
    if resume is not None:
        folder = checkpoint_and_folder(Path(resume))[1]
        config = copy.deepcopy(config) if config else load(folder / "config.toml")
        config.out = str(folder)
    config = validate(copy.deepcopy(config) if config else TrainConfig())
    with flush_denormals(config.numerics.flush_denormal):
        return _train(model, task, config, resume, progress and not quiet, label, quiet)


def train_config(
    config: TrainConfig,
    *,
    resume: str | Path | None = None,
    progress: bool = True,
    label: str = "train",
    quiet: bool = False,
) -> History:
    """The run a config describes, as `rnnlab train` makes it: seeded as the config says (so the model's
    initial weights follow the seed), its task and `SequenceModel` built from `[task]` and `[model]`."""
    from rnnlab.tasks import make_task

    seed_everything(config.seed, config.deterministic)
    task = make_task(config.task)
    model = build_model(config.model, task)
    return train(model, task, config, resume=resume, progress=progress, label=label, quiet=quiet)


def _train(
    model: nn.Module,
    task: Task,
    config: TrainConfig,
    resume: str | Path | None,
    progress: bool,
    label: str,
    quiet: bool,
):
    # ---- setup: run folder, seeds, device, optimiser, schedule, checkpoints
    ckpt_path = checkpoint_and_folder(Path(resume))[0] if resume is not None else None
    _check(model, task, config)
    recorded = record.sections(model, task)  # config.toml's [task] and [model]: what is trained here
    seed_everything(config.seed, config.deterministic)
    world, device = World.from_env(resolve_device(config.device), config.distributed.timeout_s)
    with contextlib.closing(world):  # leaves the process group it joined, however the run ends
        b = config.bptt
        k1 = b.k1 if b.mode == "truncated" else 0  # 0: one window over the whole sequence
        # context steps, k2 - k1
        context = max(0, b.k2 - b.k1) if b.mode == "truncated" and b.k2 and b.k1 else 0
        if world.rank:  # the other ranks: their own dropout masks, and rank 0 alone speaks
            torch.manual_seed(config.seed * 1_000_003 + world.rank)
            progress, quiet = False, True
        world.check_batch_size(getattr(task, "batch_size", None))
        amp = Precision(config.precision, device)  # refused here (fp16 on the CPU), before any file
        model.to(device).train()
        check_metric(model, task, device, config.eval)
        config.out = world.broadcast(config.out or str(default_folder(getattr(task, "name", "task"))))
        # locked for this process until run.close(); rank 0 alone writes it, the others read what it wrote
        run = RunDir(config.out, resume=resume is not None) if world.main else ShadowRunDir(config.out)
        world.barrier("opening the run folder")
        interrupts = Interrupts().install()  # Ctrl-C, SIGTERM: stop after this step (see the loop's top)
        s: State | None = None
        bar: ProgressBar | None = None
        try:
            optimizer = build_optimizer(model, config.optim)
            scheduler = build_scheduler(optimizer, config.schedule, config.steps, config.eval.mode)
            clipper = clipping.Clipper(config.clip)
            s = State(
                model,
                optimizer,
                scheduler,
                clipper,
                Guard(config.guard),
                Best(config.eval),
                world=world,
                precision=amp,
            )
            written = partial(world.barrier, "a checkpoint")  # no rank reads one before it is written
            checkpoints = Checkpoints(
                run.checkpoints, config.checkpoint.keep, write=world.main, before=run.flush, then=written
            )
            changed: dict[str, tuple[Any, Any]] = {}
            if ckpt_path is not None:
                changed = s.restore(ckpt_path, config, task, device)
                if s.step >= config.steps and finished(run, s.step):
                    raise ConfigError(
                        f"steps: the run in {run.path} is at step {s.step} already; ask for more steps"
                    )
                for name in ("metrics.jsonl", "events.jsonl"):
                    run.truncate(name, s.step)  # what was logged after the checkpoint is redone
                run.write_config(config, s.step, recorded)
            else:
                run.write_config(config, s.step, recorded)  # first: a folder with a config can be resumed
                with interrupts.deferred():  # checkpoint 0: the rollback target until the first periodic one
                    checkpoints.save(0, s.snapshot(config, task))
            forward = partial(tbptt.forward, model, context=context, output=task.output)
            train_forward = tbptt.distributed_forward(model, world, device, context, task.output) or forward
            own = getattr(task, "own_forward", False)  # a task that runs its model itself (seq2seq)
            trainee = tbptt.distributed_model(model, world, device) if own else model
            windows = tbptt.windows(task, k1, config.seed, device, after=s.position, shard=world.shard)
            baseline = _baseline(task)
            bar = ProgressBar(
                config.steps, s.step, enabled=progress, description=label, baseline=baseline, quiet=quiet
            )
            for note in run.notes:
                bar.say(note)
            if changed:
                run.event(
                    "resume_changes",
                    s.step,
                    changes={k: {"from": a, "to": b} for k, (a, b) in changed.items()},
                )
                said = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items())
                bar.say(f"step {s.step}: resuming with {said}")
            probes = config.diagnostics if world.main else DiagnosticsConfig(every=0)  # rank 0's share
            diagnostics = TrainingDiagnostics(model, probes, run, s.step, say=bar.say)
            first_step, t0, stopped, metric = s.step, time.perf_counter(), "steps", None
            parameters = list(model.parameters())  # once: a rollback loads weights into these same tensors

            while s.step < config.steps:
                # the step before is done: stop here, with a checkpoint (below)
                if world.signalled(interrupts):
                    break
                window = next(windows)
                s.carry = tbptt.begin(s.carry, window, b.stateful)
                targets = window.targets(task.output)
                # forward cuts the lengths
                x, lengths, start = window.inputs, window.batch.lengths, window.start
                # no loss: output "last" before the batch's end, or no row has a valid step
                if targets is None:
                    with torch.no_grad(), amp.autocast():  # the state moves on
                        _, s.carry = forward(x, s.carry, end=window.last, lengths=lengths, start=start)
                    s.carry = tbptt.full_precision(s.carry)
                    continue

                # ---- forward backward (one update's gradient; diagnostics wrap exactly this block)
                optimizer.zero_grad(set_to_none=True)
                with diagnostics.watch(s.step + 1):  # every diagnostics.every steps: into diagnostics.jsonl
                    with amp.autocast():
                        if own:
                            outputs = task.forward(trainee, window.batch)  # type: ignore[attr-defined]
                        else:
                            outputs, s.carry = train_forward(
                                x, s.carry, end=window.last, lengths=lengths, start=start
                            )
                    outputs, s.carry = tbptt.upcast(outputs), tbptt.full_precision(s.carry)
                    # the valid steps only: padding never reaches loss or metrics
                    if task.output == "sequence":
                        outputs, targets = tbptt.valid_steps(outputs, targets, window.lengths)
                    loss = task.loss(outputs, targets)
                    with world.peers("averaging the gradients"):  # DDP's all-reduce runs in the backward
                        amp.backward(loss)  # fp16: the loss scaled
                s.step, s.position = s.step + 1, window.position

                # ---- guard: a NaN/Inf loss or gradient skips the update; too many in a row roll back
                # distributed: the loss averaged over the ranks, the norm of the gradients DDP has averaged
                (loss_value,) = world.mean([loss.item()])
                amp.unscale(optimizer)
                norm = clipping.global_norm(parameters)
                overflow = amp.overflowed(loss_value, norm)  # fp16's loss scale, not a divergence
                bad = None if overflow else s.guard.check(loss_value, norm, model)
                lr = current_lr(optimizer)
                if overflow:
                    amp.step(optimizer)  # the scaler skips the update and lowers the scale
                    run.event("scaler_skip", s.step, scale=amp.scale)
                    clipped = clipping.Clipped(norm, norm, clipped=False, threshold=None)
                elif bad is not None:
                    optimizer.zero_grad(set_to_none=True)
                    run.event("nonfinite", s.step, epoch=window.epoch, batch=window.batch_index, **bad)
                    if s.guard.should_roll_back():
                        _roll_back(
                            s, run, bar, checkpoints, config, f"{s.guard.in_a_row} non-finite steps in a row"
                        )
                    clipped = clipping.Clipped(norm, norm, clipped=False, threshold=None)

                # ---- clip (one exploding gradient must not wreck the weights), then update
                else:
                    clipped = clipper(parameters, norm)
                    amp.step(optimizer)
                step_schedule(scheduler)

                # ---- log: loss, gradient norm before and after clipping, lr, the task's metrics
                diagnostics.observe(s.step, loss_value, norm)  # every step: precursor warnings, the trend
                if s.step % config.log_every == 0 or bad is not None:
                    row = _train_row(
                        s.step, window, loss_value, clipped, lr, skipped=bad is not None or overflow
                    )
                    row["time_s"] = time.perf_counter() - t0  # since this session of the run began
                    if bad is None:
                        with torch.no_grad():
                            task_metrics = task.metrics(outputs.detach(), targets)
                        averaged = world.mean(list(task_metrics.values()))  # over the ranks
                        task_metrics = dict(zip(task_metrics, averaged, strict=True))
                        row.update(task_metrics)
                        metric = metric or next(iter(task_metrics), None)
                    run.log(row)
                    bar.update(s.step, row, metric)

                # ---- evaluate: validation loss and metrics, the best checkpoint, the plateau schedule
                done = s.step >= config.steps
                if (config.eval.every and s.step % config.eval.every == 0) or done:
                    broken = nonfinite_weights(model)  # an update with a finite gradient can still overflow
                    if broken:
                        why = f"non-finite weights in {', '.join(broken)} at the evaluation"
                        run.event("nonfinite", s.step, where="evaluation", parameters=broken)
                        _roll_back(s, run, bar, checkpoints, config, why)
                    val = evaluate(
                        model, task, device, b.stateful, flush_denormal=config.numerics.flush_denormal
                    )
                    solved_before = s.best.solved
                    if val:
                        run.log({"step": s.step, "split": "val", **val, **_baseline_columns(baseline, val)})
                        measured = val.get(config.eval.metric, 0.0)  # a missing metric: Best.update says so
                        if math.isfinite(measured) and s.best.update(val, s.step):
                            with interrupts.deferred():
                                checkpoints.save_best(s.snapshot(config, task))
                        if isinstance(scheduler, ReduceLROnPlateau):
                            scheduler.step(val[config.eval.metric])
                    if s.best.solved is not None and solved_before is None:  # eval.target reached: stop here
                        reached = f"val {config.eval.metric} {val[config.eval.metric]:.4g}"
                        run.event("solved", s.step, metric=config.eval.metric, value=val[config.eval.metric])
                        bar.say(f"step {s.step}: solved, {reached} reached the target {config.eval.target:g}")
                        stopped = "target"

                # ---- checkpoint (never with non-finite weights: those roll back instead)
                stop = s.best.should_stop or stopped == "target"
                if s.step % config.checkpoint.every == 0 or done or stop:
                    try:
                        with interrupts.deferred():  # a second signal waits: the write is never cut short
                            checkpoints.save(s.step, s.snapshot(config, task))
                    except CheckpointError as e:
                        _roll_back(s, run, bar, checkpoints, config, str(e))

                # ---- termination: the step budget (the while), the target reached or early stopping
                if stopped == "target":
                    break
                if stop:
                    stopped = "early_stopping"
                    why = f"no improvement of val {config.eval.metric} in {config.eval.patience} evaluations"
                    run.event("early_stop", s.step, reason=why)
                    bar.say(f"step {s.step}: stopping early, {why}")
                    break

            # ---- interrupted: a checkpoint where the run stopped (unless the loop just wrote it)
            if interrupts.requested:
                stopped = "interrupted" if s.step < config.steps else stopped
                run.event("interrupted", s.step, signal=interrupts.name)
                if [step for step, _ in checkpoints.steps()][-1:] != [s.step]:
                    try:
                        with interrupts.deferred():
                            checkpoints.save(s.step, s.snapshot(config, task))
                    except CheckpointError:
                        pass  # non-finite weights: the run resumes from the checkpoint before

            # ---- summary: final and best metrics, speed, the loss curve; summary.json last, as the mark of a
            # run whose ending is written (a resume to the same step writes what is missing)
            bar.close()
            wall = time.perf_counter() - t0
            test: dict[str, float] = {}
            if not interrupts.requested:  # the test split, once, with the final (or the best) weights
                if config.eval.restore_best and checkpoints.best.is_file():
                    model.load_state_dict(checkpoint.load(checkpoints.best)["model"])
                    run.event("restored_best", s.step, best_step=s.best.step)
                test = evaluate(
                    model,
                    task,
                    device,
                    b.stateful,
                    flush_denormal=config.numerics.flush_denormal,
                    split="test",
                )
                if test:
                    run.log({"step": s.step, "split": "test", **test, **_baseline_columns(baseline, test)})
            rows = run.read("metrics.jsonl")
            history = History(
                run.path, [r for r in rows if r["split"] == "train"], [r for r in rows if r["split"] == "val"]
            )
            history.summary = {
                "task": describe(task),
                "model": record.describe_model(model),
                "steps": s.step,
                "stopped": stopped,
                "final": {
                    "train": history.train[-1] if history.train else {},
                    "val": history.val[-1] if history.val else {},
                },
                "best": {"metric": f"val {config.eval.metric}", "value": s.best.value, "step": s.best.step},
                "baseline": baseline,
                "solved": _solved(s, config, rows),
                "test": test,
                "test_baselines": _test_baselines(task) if test else {},
                "processes": world.size,  # torchrun's; each trained on its share of every batch
                "skipped_steps": s.guard.skipped,
                "rollbacks": s.guard.rollbacks,
                "wall_time_s": wall,  # this session's: a resumed run counts from the resume
                "steps_per_s": (s.step - first_step) / wall,
            }
            artifacts = getattr(task, "artifacts", None)
            for name, text in (artifacts() if callable(artifacts) else {}).items():
                run.write_text(name, text)  # what the task keeps beside the model, e.g. its vocabulary
            run.plot_loss(baseline.get("loss"))
            diagnostics.finish()
            run.flush()  # every row in its file before the summary marks the run's ending written
            run.write_json("summary.json", history.summary)
        except Interrupted as e:  # a second signal: at once, from wherever the run was
            e.step, e.resume = None if s is None else s.step, how_to_resume(run, recorded)
            raise
        finally:
            if bar is not None:
                bar.close()
            interrupts.restore()
            run.close()
        if interrupts.requested:
            raise Interrupted(
                interrupts.signum or signal.SIGINT, step=s.step, resume=how_to_resume(run, recorded)
            )
        return history


def _check(model: nn.Module, task: Task, config: TrainConfig) -> None:
    """What train() needs of the model and the task, checked before anything is written."""
    if getattr(task, "own_forward", False):  # the task runs its model (an encoder-decoder) itself
        if config.bptt.mode != "full" or config.bptt.stateful:
            raise ConfigError(f"bptt: the {task.name} task trains on whole pairs; use bptt.mode=full")
        return
    if config.bptt.stateful and not getattr(task, "stream", False):
        raise ConfigError("bptt.stateful: needs a stream task, whose batches continue each other")
    if not hasattr(model, "forward_with_state"):
        raise ConfigError("model needs forward_with_state(x, state, lengths) -> (y, state), as SequenceModel")
    if not getattr(model, "batch_first", True):
        raise ConfigError("tasks give batch-first inputs (B, T, I): build the model with batch_first=True")
    if getattr(model, "output", task.output) != task.output:
        raise ConfigError(f"the task predicts output={task.output!r}, the model output={model.output!r}")
    vocab_size = getattr(task, "vocab_size", None)
    if getattr(model, "vocab_size", vocab_size) != vocab_size:
        inputs = "features" if vocab_size is None else f"token ids of a vocabulary of {vocab_size}"
        raise ConfigError(
            f"the task's inputs are {inputs}, the model's vocab_size is {model.vocab_size}: build it with "
            "vocab_size=task.vocab_size"
        )


def _baseline(task: Task) -> dict[str, float]:
    """The task's memoryless baseline ({} for a task that knows none or has no `baseline`)."""
    baseline = getattr(task, "baseline", None)
    return {k: float(v) for k, v in baseline().items()} if callable(baseline) else {}


def _test_baselines(task: Task) -> dict[str, dict[str, float]]:
    """Every baseline a task knows on its test split, by name (`baselines("test")`, e.g. a forecasting
    task's naive, seasonal naive and ETS forecasts); {} for a task with only its `baseline`."""
    baselines = getattr(task, "baselines", None)
    return baselines("test") if callable(baselines) else {}


def _baseline_columns(baseline: dict[str, float], measured: dict[str, float]) -> dict[str, float]:
    """A metrics row's baseline beside each value it has one for: {"baseline_loss": 0.167, ...}."""
    return {f"baseline_{k}": v for k, v in baseline.items() if k in measured}


def _solved(s: State, config: TrainConfig, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """summary.json's "solved": when the validation metric first reached `eval.target` (None: not yet, or
    no target), with the value then and the training time it took (since this session of the run began)."""
    step = s.best.solved
    if step is None or config.eval.target is None:
        return None
    val = next((r for r in rows if r["split"] == "val" and r["step"] == step), {})
    trained = [r["time_s"] for r in rows if r["split"] == "train" and r["step"] <= step and "time_s" in r]
    return {
        "step": step,
        "metric": f"val {config.eval.metric}",
        "value": val.get(config.eval.metric),
        "target": config.eval.target,
        "time_s": trained[-1] if trained else None,
    }


def _train_row(
    step: int, window: tbptt.Window, loss: float, clip: clipping.Clipped, lr: float, skipped: bool
):
    """The metrics.jsonl row of one training step (the task's metrics are added to it)."""
    return {
        "step": step,
        "split": "train",
        "epoch": window.epoch,
        "batch": window.batch_index,
        "loss": loss,
        "grad_norm": clip.norm,
        "grad_norm_clipped": clip.norm_clipped,
        "clipped": clip.clipped,
        "lr": lr,
        "skipped": skipped,
    }


def _roll_back(
    s: State, run: RunDir, bar: ProgressBar, checkpoints: Checkpoints, config: TrainConfig, why: str
) -> None:
    """Go back to the last good checkpoint with a lower learning rate, and say so."""
    s.guard.rolled_back()  # raises DivergedError when the rollbacks are used up
    path = checkpoints.latest()
    assert path is not None, "a fresh run writes checkpoint 0 before its first step"
    to_step = s.roll_back(path, config.guard.lr_factor, config.optim)
    lr = current_lr(s.optimizer)
    run.event("rollback", s.step, reason=why, checkpoint=path.name, checkpoint_step=to_step, lr=lr)
    bar.say(f"step {s.step}: {why}; rolled back to {path.name} (step {to_step}), learning rate now {lr:.3g}")
