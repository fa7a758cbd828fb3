"""One fine-tuning run: TRL ``SFTTrainer`` (LoRA via peft, or full), reporting through the event stream.

Order of work (cheap checks first, so a bad name fails in a second, not after loading torch):
model name check → dataset load/normalise → torch, device → tokenizer and model → trainer → ``start``
→ ``sample`` and ``score`` (before) → training (``step``/``checkpoint``) → save → ``sample`` and ``score``
(after) → ``done``. ``score`` is exact match on held-out ``score_examples`` (:mod:`vibeml.trainer.score`).

Loss: on the completion only for prompt/completion rows (alpaca is normalised to those), on the assistant
turns only for ``messages``/sharegpt rows (``train_on="all"``: the whole conversation; see
:mod:`vibeml.trainer.assistant_mask`), on all tokens for ``text`` rows.

Stopping: SIGTERM/SIGINT or ``max_runtime_seconds`` (counted from the start of :func:`train`) set a
flag; at the next optimizer step's end a callback makes the Trainer save a checkpoint and stop; then a
``stopped`` event is written and :func:`train` returns. A second signal interrupts at once
(``KeyboardInterrupt``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Literal

from vibeml.exceptions import ConfigurationError, ResourceError, TrainingError
from vibeml.trainer import oom
from vibeml.trainer.assistant_mask import dataset_for_loss
from vibeml.trainer.checkpoints import write_marker
from vibeml.trainer.config import OomFallback, TrainerConfig
from vibeml.trainer.cpushare import CpuShare
from vibeml.trainer.data import load_training_dataset
from vibeml.trainer.engine import Loaded, load_for_training
from vibeml.trainer.evaluation import eval_sft_kwargs, make_eval_callback, prepare_eval_dataset, set_tracking_env
from vibeml.trainer.events import (
    CheckpointEvent,
    DoneEvent,
    EventWriter,
    OomRetryEvent,
    SampleEvent,
    ScoreEvent,
    StartEvent,
    StepEvent,
    StoppedEvent,
)
from vibeml.trainer.modeling import (
    ensure_chat_template_and_pad,
    generate_reply,
    resolve_device,
    resolve_model_source,
)
from vibeml.trainer.parallel import (
    agree_stop,
    allow_cpu_fsdp,
    barrier,
    check_strategy,
    die_with_parent,
    final_state_dict_full,
    is_main_process,
    node_count,
    strategy_sft_kwargs,
    world_size,
)
from vibeml.trainer.resume import choose_resume_checkpoint
from vibeml.trainer.speed import CheckpointingChoice

__all__ = ["StopFlag", "train"]


class StopFlag:
    """Set from a signal handler or the runtime budget; read by the training callback."""

    def __init__(self, deadline: float | None = None) -> None:
        self.reason: str | None = None
        self.deadline = deadline  # time.monotonic() value, or None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def check(self) -> str | None:
        if self.reason is None and self.deadline is not None and time.monotonic() >= self.deadline:
            self.reason = "max_runtime"
        return self.reason


class _Signals:
    """Install SIGTERM/SIGINT handlers for the duration of a run (main thread only)."""

    def __init__(self, flag: StopFlag) -> None:
        self.flag = flag
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.flag.reason in ("sigterm", "sigint"):
            raise KeyboardInterrupt  # second signal: stop now
        self.flag.request("sigterm" if signum == signal.SIGTERM else "sigint")
        print(
            f"[vibeml] {signal.Signals(signum).name} received: stopping at the next step end (with a checkpoint)",
            flush=True,
        )

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _make_callback(
    writer: EventWriter, flag: StopFlag, t0: float, share: CpuShare | None = None, device: str = "cpu"
) -> Any:
    """The TrainerCallback that writes step/checkpoint events and applies stop requests."""
    from transformers import TrainerCallback

    class VibeMLCallback(TrainerCallback):
        def __init__(self) -> None:
            self.first_loss: float | None = None
            self.last_loss: float | None = None
            self.stopped_reason: str | None = None
            self.last_checkpoint: str | None = None
            self._train_start: float | None = None
            self._start_step = 0
            self._last_time = 0.0
            self._last_tokens = 0.0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self._train_start = self._last_time = time.monotonic()
            self._start_step = state.global_step

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            if share is not None:
                before = share.threads
                if share.rebalance(force=False) != before:
                    print(f"[vibeml] {share.describe()}", flush=True)
            reason = flag.check()
            if world_size() > 1:  # every process stops at the same step, or the collectives hang
                reason = agree_stop(reason, device)
            if reason is not None and self.stopped_reason is None:
                self.stopped_reason = reason
                control.should_save = True
                control.should_log = True
                control.should_training_stop = True
            return control

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            if not logs or "loss" not in logs:
                return
            now = time.monotonic()
            loss = float(logs["loss"])
            if self.first_loss is None:
                self.first_loss = loss
            self.last_loss = loss
            tokens = logs.get("num_tokens")
            tokens_per_s = None
            if isinstance(tokens, (int, float)) and now > self._last_time and tokens >= self._last_tokens:
                # TRL's running count of non-padding tokens (attention mask sum) seen by this process
                tokens_per_s = round((float(tokens) - self._last_tokens) / (now - self._last_time), 1)
            if isinstance(tokens, (int, float)):
                self._last_tokens = float(tokens)
            self._last_time = now
            done_here = state.global_step - self._start_step
            eta = None
            if self._train_start is not None and done_here > 0 and state.max_steps:
                per_step = (now - self._train_start) / done_here
                eta = round(max(0, state.max_steps - state.global_step) * per_step, 1)
            lr = logs.get("learning_rate")
            writer.emit(
                StepEvent(
                    step=int(state.global_step),
                    max_steps=int(state.max_steps) if state.max_steps else None,
                    epoch=round(float(state.epoch or 0.0), 4),
                    loss=round(loss, 6),
                    learning_rate=float(lr) if lr is not None else None,
                    tokens_per_s=tokens_per_s,
                    eta_seconds=eta,
                    elapsed_seconds=round(time.monotonic() - t0, 2),
                )
            )
            print(
                f"[vibeml] step {state.global_step}/{state.max_steps} loss {loss:.4f}"
                + (f" lr {float(lr):.2e}" if lr is not None else "")
                + (f" {tokens_per_s:.0f} tok/s" if tokens_per_s is not None else "")
                + (f" eta {eta:.0f}s" if eta is not None else ""),
                flush=True,
            )

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            barrier()  # every process has written its shard and RNG state before the marker lists the files
            if state.is_world_process_zero:
                try:  # last, after the weights and trainer_state.json: the checkpoint is complete
                    write_marker(path, int(state.global_step))
                except (OSError, ValueError) as exc:
                    print(f"[vibeml] checkpoint {path} is not complete ({exc}); not resumable", flush=True)
                    return
            self.last_checkpoint = str(path)
            writer.emit(CheckpointEvent(step=int(state.global_step), path=str(path)))

    return VibeMLCallback()


def _sft_config(config: TrainerConfig, dev: Any, loaded: Loaded, extra: dict[str, Any] | None = None) -> Any:
    """Build ``SFTConfig``, passing only the fields this TRL/transformers version knows (``extra`` last)."""
    from trl import SFTConfig

    hp = config.hyperparameters
    known = {f.name for f in dataclasses.fields(SFTConfig)}
    kwargs: dict[str, Any] = {
        "output_dir": config.checkpoint_dir,
        "max_steps": hp.max_steps if hp.max_steps is not None else -1,
        "num_train_epochs": hp.num_epochs if hp.num_epochs is not None else 1.0,
        "learning_rate": hp.learning_rate,
        "per_device_train_batch_size": hp.batch_size,
        "gradient_accumulation_steps": hp.gradient_accumulation_steps,
        "max_length": hp.max_seq_length,
        "packing": hp.packing,
        "completion_only_loss": None,  # True for prompt/completion rows (alpaca too), else False
        "assistant_only_loss": False,
        "seed": hp.seed,
        "weight_decay": hp.weight_decay,
        "lr_scheduler_type": hp.lr_scheduler_type,
        "logging_steps": hp.logging_steps,
        "logging_first_step": True,
        "save_strategy": "steps",
        "save_steps": hp.save_steps,
        "save_total_limit": hp.save_total_limit,
        "report_to": "none",
        "disable_tqdm": True,
        "bf16": dev.bf16,
        "fp16": dev.fp16,
        "use_cpu": dev.device == "cpu",
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": dev.device == "cuda",
        "dataset_num_proc": None,
        "log_level": "warning",
    }
    # transformers 5.x renamed gradient_checkpointing to activation_checkpointing (old name deprecated)
    ckpt = "activation_checkpointing" if "activation_checkpointing" in known else "gradient_checkpointing"
    # Unsloth wires its own (offloaded) checkpointing into the model: the Trainer must not add another.
    checkpointing = loaded.checkpointing.enabled and config.engine != "unsloth"
    kwargs[ckpt] = checkpointing
    if checkpointing:
        ckpt_kwargs = loaded.checkpointing.kwargs()
        if ckpt == "gradient_checkpointing":  # older transformers: no every_n_layers
            ckpt_kwargs.pop("every_n_layers", None)
        kwargs[f"{ckpt}_kwargs"] = ckpt_kwargs
    if loaded.speed.optim:
        kwargs["optim"] = loaded.speed.optim
    if loaded.speed.use_liger_kernel:
        kwargs["use_liger_kernel"] = True  # layer kernels only: TRL keeps its fused LM head + loss
    if "warmup_ratio" in known:
        kwargs["warmup_ratio"] = hp.warmup_ratio
    else:  # transformers 5: a float below 1 is a ratio of the total steps
        kwargs["warmup_steps"] = hp.warmup_ratio if hp.warmup_ratio < 1 else math.ceil(hp.warmup_ratio)
    if "model_init_kwargs" in known:
        kwargs["model_init_kwargs"] = None
    parallel = strategy_sft_kwargs(config, dev.device, loaded.model, checkpointing)
    if parallel.get("fsdp") and dev.device == "cpu":
        allow_cpu_fsdp()
    if parallel.get("fsdp"):  # FSDP checkpoints activations itself (fsdp_config), not the Trainer
        kwargs.pop(f"{ckpt}_kwargs", None)
    kwargs.update(parallel)
    kwargs.update(extra or {})
    unknown = [k for k in kwargs if k not in known]
    for k in unknown:  # an older/newer version without the field: leave its default
        kwargs.pop(k)
    return SFTConfig(**kwargs)


def _peft_config(config: TrainerConfig, loaded: Loaded) -> Any:
    if config.method == "full" or loaded.peft_applied:
        return None
    from peft import LoraConfig

    hp = config.hyperparameters
    target = hp.lora_target_modules
    return LoraConfig(
        r=hp.lora_r,
        lora_alpha=hp.lora_alpha,
        lora_dropout=hp.lora_dropout,
        target_modules=target if isinstance(target, str) else list(target),
        bias="none",
        task_type="CAUSAL_LM",
    )


def _planned_max_steps(config: TrainerConfig, num_rows: int) -> int:
    hp = config.hyperparameters
    if hp.max_steps is not None:
        return hp.max_steps
    batches = max(1, math.ceil(num_rows / hp.batch_size))
    per_epoch = max(1, math.ceil(batches / hp.gradient_accumulation_steps))
    return max(1, math.ceil((hp.num_epochs or 1.0) * per_epoch))


def _is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text or "can't allocate memory" in text


def _oom_error(exc: BaseException, device: str, config: TrainerConfig) -> ResourceError:
    hp = config.hyperparameters
    first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
    return ResourceError(
        f"out of memory on {device}: {first_line}",
        {"batch_size": hp.batch_size, "max_seq_length": hp.max_seq_length, "method": config.method},
        "Lower batch_size or max_seq_length (raise gradient_accumulation_steps to compensate), turn on "
        "gradient_checkpointing, use LoRA instead of a full fine-tune, or pick a GPU with more memory.",
    )


def _samples(
    phase: Literal["before", "after"],
    config: TrainerConfig,
    model: Any,
    tokenizer: Any,
    writer: EventWriter,
    flag: StopFlag,
) -> None:
    for prompt in config.sample_prompts:
        if flag.reason is not None:
            return
        try:
            completion = generate_reply(
                model, tokenizer, prompt, config.sample_max_new_tokens, config.hyperparameters.max_seq_length
            )
        except Exception as exc:  # a sample must never sink a run
            completion = f"[generation failed: {type(exc).__name__}: {exc}]"
        writer.emit(SampleEvent(phase=phase, prompt=prompt, completion=completion))


def _score(
    phase: Literal["before", "after"],
    config: TrainerConfig,
    model: Any,
    tokenizer: Any,
    writer: EventWriter,
    flag: StopFlag,
) -> None:
    """Exact match on the held-out ``score_examples`` (none: nothing to do); a failure never sinks a run."""
    from vibeml.trainer.score import score_examples

    if not config.score_examples or flag.reason is not None:
        return
    t = time.monotonic()
    try:
        result = score_examples(
            model,
            tokenizer,
            [(e.prompt, e.answer) for e in config.score_examples],
            config.score_max_new_tokens,
            config.hyperparameters.max_seq_length,
        )
    except Exception as exc:
        print(f"[vibeml] held-out scoring failed ({type(exc).__name__}: {exc}); training goes on", flush=True)
        return
    seconds = round(time.monotonic() - t, 2)
    writer.emit(ScoreEvent(phase=phase, correct=result.correct, total=result.total, seconds=seconds))
    print(
        f"[vibeml] held-out exact match {phase} training: {result.accuracy:.0%} ({result.correct}/{result.total}) "
        f"in {seconds:.1f}s",
        flush=True,
    )


def _drop_log_printer(trainer: Any) -> None:
    """Without tqdm the Trainer prints every log dict; our one-line progress replaces it."""
    try:
        from transformers.trainer_callback import PrinterCallback
    except ImportError:  # pragma: no cover - moved in some future version: keep its output
        return
    trainer.remove_callback(PrinterCallback)


def _quiet_libraries() -> None:
    import transformers

    transformers.utils.logging.set_verbosity_warning()
    transformers.utils.logging.disable_progress_bar()
    try:
        import datasets

        datasets.disable_progress_bars()
    except ImportError:  # pragma: no cover - datasets is a hard dependency of trl
        pass


def train(config: TrainerConfig, writer: EventWriter) -> dict[str, Any]:
    """Run one fine-tune as ``config`` says, writing events to ``writer``.

    Returns:
        ``{"status": "done"|"stopped", "step", "output_dir", "checkpoint", "first_loss", "final_loss",
        "elapsed_seconds"}``.

    Raises:
        VibeMLError: ``ModelNotFoundError``, ``DatasetError``, ``ResourceError`` (e.g. out of memory),
            ``ConfigurationError`` or ``TrainingError``; anything else is a bug and propagates as is.
    """
    t0 = time.monotonic()
    deadline = t0 + config.max_runtime_seconds if config.max_runtime_seconds else None
    flag = StopFlag(deadline)
    with _Signals(flag), contextlib.ExitStack() as stack:
        if not is_main_process():  # under torchrun rank 0 speaks for the job; errors still reach stderr
            stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
        return _train(config, writer, flag, t0, stack)


def _train(
    config: TrainerConfig, writer: EventWriter, flag: StopFlag, t0: float, stack: contextlib.ExitStack
) -> dict[str, Any]:
    check_strategy(config)
    die_with_parent()
    model_source = resolve_model_source(config.model)
    _check_writable_dirs(config)
    prepared = load_training_dataset(
        config.dataset, config.dataset_format, config.dataset_split, config.dataset_config, config.column_mapping
    )
    if prepared.skipped:
        print(f"[vibeml] skipped {prepared.skipped} malformed rows: {'; '.join(prepared.problems)}", flush=True)
    train_rows, eval_rows, num_eval = prepare_eval_dataset(config, prepared)  # before the model: fails fast
    split = _Split(train_rows, eval_rows, num_eval, set_tracking_env(config))
    resume_from = choose_resume_checkpoint(config, writer)
    if flag.check() is not None:  # stopped before any work worth keeping: skip the model load
        return _stopped_early(writer, flag, resume_from, config, t0)

    import torch

    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    dev = resolve_device(config.device, config.method)
    share: CpuShare | None = None
    if dev.device == "cpu" and not config.torch_threads and not os.environ.get("OMP_NUM_THREADS"):
        share = stack.enter_context(CpuShare())  # concurrent CPU runs split the cores, not fight over them
        print(f"[vibeml] {share.describe()}", flush=True)
    print(
        f"[vibeml] loading {config.model} ({config.method}, {config.engine}, {dev.dtype_name} on {dev.device})",
        flush=True,
    )
    if config.engine != "unsloth":  # Unsloth must be imported before transformers, so quiet them after it
        _quiet_libraries()
    ladder = oom.fallbacks(config)
    inherit: CheckpointingChoice | None = None
    retries = 0
    while True:  # out of memory in the first steps: the next safer configuration (vibeml.trainer.oom)
        if dev.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        outcome = _attempt(
            config, writer, flag, t0, dev, share, prepared, split, resume_from, model_source, ladder, inherit, retries
        )
        if not isinstance(outcome, _OutOfMemory):
            return outcome
        gc.collect()  # the failed attempt's model, optimizer and activations
        if dev.device == "cuda":
            torch.cuda.empty_cache()
        retries += 1
        config, rung, ladder = outcome.next_config, outcome.rung, outcome.rest
        inherit = outcome.checkpointing if rung.gradient_checkpointing is None else None
        tried = outcome.tried
        estimated, capacity = outcome.estimated_gib, outcome.capacity_gib
        writer.emit(
            OomRetryEvent(
                attempt=retries,
                step=outcome.step,
                message=outcome.message,
                failed_batch_size=tried.batch_size,
                failed_gradient_accumulation_steps=tried.gradient_accumulation_steps,
                failed_gradient_checkpointing=tried.gradient_checkpointing,
                failed_checkpoint_every_n_layers=tried.every_n_layers,
                next_batch_size=rung.batch_size,
                next_gradient_accumulation_steps=rung.gradient_accumulation_steps,
                next_gradient_checkpointing=rung.gradient_checkpointing,
                estimated_gib=estimated,
                capacity_gib=capacity,
                peak_gib=outcome.peak_gib,
                underestimate_at_least=round(capacity / estimated, 3) if capacity and estimated else None,
            )
        )
        print(
            f"[vibeml] out of memory at step {outcome.step} with {tried.text}; retrying with {oom.rung_text(rung)}"
            + (f" (estimated {estimated:.1f} GiB, capacity {capacity:.1f} GiB)" if estimated and capacity else ""),
            flush=True,
        )


@dataclasses.dataclass
class _Split:
    """The rows trained on and evaluated on (``eval_split``/``eval_dataset``), and TensorBoard's folder."""

    train: Any
    eval: Any | None
    num_eval: int
    tracking_dir: str | None


@dataclasses.dataclass
class _OutOfMemory:
    """An attempt that ran out of memory in its first steps, and the configuration to try next."""

    tried: oom.Attempt
    checkpointing: CheckpointingChoice
    step: int
    message: str
    estimated_gib: float | None
    capacity_gib: float | None
    peak_gib: float | None
    next_config: TrainerConfig
    rung: OomFallback
    rest: list[OomFallback]


def _attempt(
    config: TrainerConfig,
    writer: EventWriter,
    flag: StopFlag,
    t0: float,
    dev: Any,
    share: CpuShare | None,
    prepared: Any,
    split: _Split,
    resume_from: Path | None,
    model_source: str,
    ladder: list[OomFallback],
    inherit: CheckpointingChoice | None,
    retries: int,
) -> dict[str, Any] | _OutOfMemory:
    """Load, build the trainer and train with ``config``; an out-of-memory in the first steps with a rung
    left on ``ladder`` returns :class:`_OutOfMemory` (after dropping every reference to the model)."""
    hp = config.hyperparameters
    try:  # before TRL is imported: Unsloth patches transformers/TRL when it loads
        loaded = load_for_training(config, dev, model_source)
    except RuntimeError as exc:
        if _is_oom(exc):
            raise _oom_error(exc, dev.device, config) from exc
        raise
    if inherit is not None and config.engine != "unsloth" and _strength(inherit) > _strength(loaded.checkpointing):
        loaded.checkpointing = dataclasses.replace(
            inherit, reason=f"kept from the attempt that ran out of memory ({inherit.reason})"
        )
    _quiet_libraries()
    from trl import SFTTrainer

    model, tokenizer = loaded.model, loaded.tokenizer
    for note in loaded.speed.notes:
        print(f"[vibeml] {note}", flush=True)
    print(
        f"[vibeml] attention {loaded.speed.attn_implementation}, optimizer {loaded.speed.optim or 'default'}, "
        f"liger {'on' if loaded.speed.use_liger_kernel else 'off'}, packing {'on' if hp.packing else 'off'}; "
        f"gradient checkpointing {'on' if loaded.checkpointing.enabled else 'off'}"
        + (f" every {loaded.checkpointing.every_n_layers} layers" if loaded.checkpointing.every_n_layers > 1 else "")
        + f" ({loaded.checkpointing.reason})",
        flush=True,
    )
    template = ensure_chat_template_and_pad(tokenizer, model)
    if template["chat_template"]:
        print("[vibeml] the tokenizer has no chat template: using the ChatML-style fallback", flush=True)

    if flag.check() is not None:
        return _stopped_early(writer, flag, resume_from, config, t0)
    planned = _planned_max_steps(config, len(split.train))
    args = _sft_config(config, dev, loaded, eval_sft_kwargs(config, planned, split.eval is not None))
    callback = _make_callback(writer, flag, t0, share, dev.device)
    evaluated = make_eval_callback(writer, t0, split.num_eval) if split.eval is not None else None
    callbacks = [callback] if evaluated is None else [callback, evaluated]
    threshold = oom.injected_oom_above()
    if threshold is not None:
        print(f"[vibeml] WARNING: fault injection {oom.FAULT_ENV}={threshold} is on (a test hook)", flush=True)
        callbacks.append(oom.fault_callback(threshold, hp.batch_size))
    train_dataset, loss_on = dataset_for_loss(split.train, prepared.format, tokenizer, config.train_on)
    eval_dataset = None  # the eval loss is on what the training loss is on
    if split.eval is not None:
        eval_dataset, _ = dataset_for_loss(split.eval, prepared.format, tokenizer, config.train_on)
    print(f"[vibeml] preparing {prepared.num_rows} {prepared.format} examples; loss on {loss_on}", flush=True)
    if split.eval is not None:
        print(
            f"[vibeml] evaluating on {split.num_eval} examples every {args.eval_steps} steps and at the end"
            + ("; keeping the best checkpoint (saved at each evaluation)" if config.keep_best else ""),
            flush=True,
        )
    if split.tracking_dir:
        print(f"[vibeml] TensorBoard logs: {split.tracking_dir}", flush=True)
    try:
        trainer: Any = SFTTrainer(
            model=model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=tokenizer,
            peft_config=_peft_config(config, loaded),
            callbacks=callbacks,
        )
    except RuntimeError as exc:
        if _is_oom(exc):
            raise _oom_error(exc, dev.device, config) from exc
        raise
    except ValueError as exc:
        if "target modules" in str(exc).lower() or "target_modules" in str(exc).lower():
            raise ConfigurationError(
                f"LoRA target modules do not fit this model: {exc}",
                {"lora_target_modules": hp.lora_target_modules},
                "Use 'all-linear', or module names of this architecture (e.g. q_proj, v_proj).",
            ) from exc
        raise
    _drop_log_printer(trainer)
    model = trainer.model
    # rows after skipping malformed ones; the trainer's dataset may hold fewer (all-masked rows dropped)
    # or other units (packed sequences), which is what the step count follows
    num_examples = len(split.train)
    if hp.max_steps is None and trainer.train_dataset is not None:
        planned = _planned_max_steps(config, len(trainer.train_dataset))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    writer.emit(
        StartEvent(
            model=config.model,
            dataset=config.dataset,
            method=config.method,
            num_examples=num_examples,
            max_steps=planned,
            device=dev.device,
            resumed_from=str(resume_from) if resume_from else None,
            dataset_format=prepared.format,
            skipped_rows=prepared.skipped,
            dtype=dev.dtype_name,
            trainable_params=trainable,
            total_params=total,
            engine=config.engine,
            attn_implementation=loaded.speed.attn_implementation,
            gradient_checkpointing=loaded.checkpointing.enabled,
            checkpoint_every_n_layers=loaded.checkpointing.every_n_layers,
            use_liger_kernel=loaded.speed.use_liger_kernel,
            packing=hp.packing,
            batch_size=hp.batch_size,
            gradient_accumulation_steps=hp.gradient_accumulation_steps,
            world_size=world_size(),
            num_nodes=node_count(),
            strategy=config.strategy,
            global_batch_size=hp.batch_size * hp.gradient_accumulation_steps * world_size(),
        )
    )
    print(
        f"[vibeml] {config.method} fine-tune of {config.model} on {num_examples} examples "
        f"({prepared.format}), {planned} steps on {dev.device}"
        + (f" × {world_size()} processes ({config.strategy})" if world_size() > 1 else "")
        + (f", resuming from {resume_from}" if resume_from else ""),
        flush=True,
    )
    if not retries:  # a retry does not repeat the samples and score taken before training
        _samples("before", config, model, tokenizer, writer, flag)
        _score("before", config, model, tokenizer, writer, flag)

    if flag.check() is not None:  # asked to stop before the first step: nothing new to save
        return _stopped_early(writer, flag, resume_from, config, t0)

    out_of_memory: _OutOfMemory | None = None
    try:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except KeyboardInterrupt:
        raise
    except RuntimeError as exc:
        if not _is_oom(exc):
            raise
        out_of_memory = _retryable(exc, config, dev, loaded, callback, trainer, ladder)
        if out_of_memory is None:
            raise _oom_error(exc, dev.device, config) from exc
    if out_of_memory is not None:  # drop the failed attempt before the next one loads
        del trainer, model, loaded, tokenizer, callback, callbacks
        return out_of_memory
    step = int(trainer.state.global_step)

    if callback.stopped_reason is not None and step < int(trainer.state.max_steps or 0):
        return _stopped(
            writer,
            callback.stopped_reason,
            step,
            callback.last_checkpoint,
            config,
            t0,
            callback.first_loss,
            callback.last_loss,
        )

    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        if config.strategy == "fsdp":
            final_state_dict_full(trainer)  # every process gathers; rank 0 writes one unsharded copy
        trainer.save_model(str(out))
        if is_main_process():
            tokenizer.save_pretrained(str(out))
    except OSError as exc:
        raise ResourceError(
            f"could not save the result to {out}: {exc}",
            {"output_dir": str(out)},
            "Free disk space or choose another output_dir.",
        ) from exc
    _samples("after", config, model, tokenizer, writer, flag)
    _score("after", config, model, tokenizer, writer, flag)

    merged_dir = None
    if config.save_merged and config.method == "lora" and is_main_process():
        merged_dir = out / "merged"
        try:
            merged = _merge_source(config, trainer.model, out)
            merged.save_pretrained(str(merged_dir))
            tokenizer.save_pretrained(str(merged_dir))
        except OSError as exc:
            raise ResourceError(
                f"could not save merged weights to {merged_dir}: {exc}",
                {"output_dir": str(out)},
                "Free disk space, or turn save_merged off.",
            ) from exc
        except Exception as exc:
            raise TrainingError(
                f"merging the adapter failed: {exc}",
                {"output_dir": str(out)},
                "The adapter in output_dir is intact; merge it later with peft.",
            ) from exc

    elapsed = round(time.monotonic() - t0, 2)
    writer.emit(
        DoneEvent(
            output_dir=str(out),
            step=step,
            first_loss=callback.first_loss,
            final_loss=callback.last_loss,
            elapsed_seconds=elapsed,
            merged_dir=str(merged_dir) if merged_dir else None,
            final_eval_loss=evaluated.last_loss if evaluated is not None else None,
            best_eval_loss=evaluated.best_loss if evaluated is not None else None,
            best_checkpoint=trainer.state.best_model_checkpoint if config.keep_best else None,
        )
    )
    print(
        f"[vibeml] done: step {step}, loss {callback.first_loss} -> {callback.last_loss}, {elapsed}s; saved to {out}",
        flush=True,
    )
    return {
        "status": "done",
        "step": step,
        "output_dir": str(out),
        "checkpoint": callback.last_checkpoint,
        "first_loss": callback.first_loss,
        "final_loss": callback.last_loss,
        "elapsed_seconds": elapsed,
    }


def _merge_source(config: TrainerConfig, model: Any, out: Path) -> Any:
    """The merged model: from the trained one, or (FSDP: it is sharded) from the saved adapter, on rank 0."""
    if config.strategy != "fsdp":
        return model.merge_and_unload()
    from peft import AutoPeftModelForCausalLM

    return AutoPeftModelForCausalLM.from_pretrained(str(out)).merge_and_unload()


def _strength(choice: CheckpointingChoice) -> float:
    """How much a checkpointing choice saves: 0 off, 1/n for every n-th layer."""
    return 1.0 / max(1, choice.every_n_layers) if choice.enabled else 0.0


def _retryable(
    exc: BaseException,
    config: TrainerConfig,
    dev: Any,
    loaded: Loaded,
    callback: Any,
    trainer: Any,
    ladder: list[OomFallback],
) -> _OutOfMemory | None:
    """The retry for an out-of-memory in training, or None: past the first steps, after a checkpoint of
    this attempt, under several processes (every rank would have to agree), or with the ladder spent."""
    hp = config.hyperparameters
    step = int(trainer.state.global_step)
    if step - callback._start_step >= oom.RETRY_WINDOW_STEPS or callback.last_checkpoint is not None:
        return None
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        return None
    choice = loaded.checkpointing
    tried = oom.Attempt(hp.batch_size, hp.gradient_accumulation_steps, choice.enabled, choice.every_n_layers)
    nxt = oom.retry_config(config, ladder, tried)
    if nxt is None:
        return None
    try:
        model_config = loaded.model.config.to_dict()
    except Exception:  # pragma: no cover - every PretrainedConfig has to_dict
        model_config = None
    capacity = peak = None
    if dev.device == "cuda":
        import torch

        capacity = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 3)
        peak = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    return _OutOfMemory(
        tried=tried,
        checkpointing=choice,
        step=step,
        message=(str(exc).splitlines() or [type(exc).__name__])[0][:500],
        estimated_gib=oom.estimate_failed_gib(config, model_config, tried),
        capacity_gib=capacity,
        peak_gib=peak,
        next_config=nxt[0],
        rung=nxt[1],
        rest=nxt[2],
    )


def _check_writable_dirs(config: TrainerConfig) -> None:
    """Fail in a second, not after loading the model, when output or checkpoint folders cannot exist."""
    for what, folder in (("output_dir", config.output_dir), ("checkpoint_dir", config.checkpoint_dir)):
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create {what} {folder}: {exc.strerror or exc}",
                {what: folder},
                f"Point {what} at a writable folder (not an existing file).",
            ) from exc


def _stopped_early(
    writer: EventWriter, flag: StopFlag, resume_from: Path | None, config: TrainerConfig, t0: float
) -> dict[str, Any]:
    """Stop before training began: the latest checkpoint (if any) is still the one to resume from."""
    checkpoint = str(resume_from) if resume_from else None
    return _stopped(writer, flag.reason or "stop", _checkpoint_step(resume_from), checkpoint, config, t0)


def _checkpoint_step(path: Path | None) -> int:
    if path is None:
        return 0
    try:
        return int(path.name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def _stopped(
    writer: EventWriter,
    reason: str,
    step: int,
    checkpoint: str | None,
    config: TrainerConfig,
    t0: float,
    first_loss: float | None = None,
    final_loss: float | None = None,
) -> dict[str, Any]:
    elapsed = round(time.monotonic() - t0, 2)
    writer.emit(StoppedEvent(step=step, checkpoint=checkpoint, reason=reason, elapsed_seconds=elapsed))
    print(f"[vibeml] stopped ({reason}) at step {step}; checkpoint: {checkpoint}", file=sys.stdout, flush=True)
    return {
        "status": "stopped",
        "reason": reason,
        "step": step,
        "output_dir": config.output_dir,
        "checkpoint": checkpoint,
        "first_loss": first_loss,
        "final_loss": final_loss,
        "elapsed_seconds": elapsed,
    }
