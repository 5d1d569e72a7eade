"""The program a batch-size sweep runs: one training run of the tiny demo task.

W&B's agent (``wandb agent``) and ``wandb-batchsize sweep run`` both start it as

    python .../wandb_batchsize/demo/sweep_train.py --batch_size=64 --seed=0 ...

and also hand it the same parameters through ``WANDB_SWEEP_PARAM_PATH``, which
``wandb.init()`` reads: so ``wandb.config`` holds the sweep's values and nothing
here is sweep-specific. ``sweep create``'s default ``--program`` is this file,
wherever the package is installed; ``sweeps/train.py`` in a checkout runs the
same :func:`main`. Run by hand, the command-line values are the config, and the
run is offline unless ``WANDB_MODE`` says otherwise (a one-line notice says so;
under W&B's agent, with ``WANDB_SWEEP_ID`` set, W&B's own default applies).

The learning rate is tied to the batch size by the constant parameters
``lr_scaling`` / ``base_lr`` / ``base_batch`` / ``max_lr``
(``wandb_batchsize.tracking.sweeps.lr_from_config``); an explicit ``lr`` wins.

Logged: ``train/loss`` (every ``log_every`` steps, against ``train/step``),
``val/loss`` and ``val/accuracy`` at the end; with a ``target`` (a validation
loss), ``steps_to_target`` and ``samples_to_target`` in the summary when it is
reached (``target_reached`` says whether it was); and the per-step loss through
``wandb_batchsize.SusceptibilityMonitor`` (``susceptibility/*``).
"""

from __future__ import annotations

import argparse
import os
import sys

DEFAULTS = {
    "batch_size": 32,
    "seed": 0,
    "epochs": 1.0,
    "n_train": 4096,
    "hidden": 32,
    "data_seed": 0,
    "log_every": 10,
    "monitor": True,
    "check_every": 100,
    "monitor_detrend": "auto",
}
DEFAULT_LR = 0.1


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _detrend(text: str) -> str | int:
    """``--monitor_detrend``: ``auto`` (adapts to the run's length), ``none``,
    ``linear``, ``diff`` or a moving-average window in steps."""
    text = str(text).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    if text in ("auto", "none", "linear", "diff"):
        return text
    raise argparse.ArgumentTypeError(
        f"expected auto, none, linear, diff or a window in steps, got {text!r}"
    )


def parse_args(argv: list[str] | None = None) -> dict:
    """The command-line parameters that were given (defaults are applied later, so
    that an lr rule from the sweep is not overridden by a default ``lr``)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch_size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--lr", type=float, help="fixed learning rate (overrides the scaling rule)")
    p.add_argument("--lr_scaling", choices=["linear", "sqrt", "none"])
    p.add_argument("--base_lr", type=float)
    p.add_argument("--base_batch", type=int)
    p.add_argument("--max_lr", type=float)
    p.add_argument("--epochs", type=float, help="sample budget, in passes over the data")
    p.add_argument("--max_steps", type=int, help="step budget (instead of epochs)")
    p.add_argument("--target", type=float, help="validation loss to reach: logs steps_to_target")
    p.add_argument("--n_train", type=int)
    p.add_argument("--hidden", type=int)
    p.add_argument("--data_seed", type=int)
    p.add_argument("--log_every", type=int)
    p.add_argument("--monitor", type=_bool, help="run the SusceptibilityMonitor (default true)")
    p.add_argument("--check_every", type=int)
    p.add_argument(
        "--monitor_detrend",
        type=_detrend,
        help="the monitor's detrend (default auto: fits the run's length; or a window)",
    )
    p.add_argument("--project", default=None)
    args, unknown = p.parse_known_args(argv)
    if unknown:
        print(f"train.py: ignoring unknown arguments {unknown}", file=sys.stderr)
    return {k: v for k, v in vars(args).items() if v is not None}


def default_offline() -> None:
    """``WANDB_MODE=offline`` when nothing chose a mode (run by hand, not by an agent)."""
    if "WANDB_MODE" not in os.environ and "WANDB_SWEEP_ID" not in os.environ:
        os.environ["WANDB_MODE"] = "offline"
        print(
            "train: WANDB_MODE is not set, so this run is offline "
            "(set WANDB_MODE=online to log to W&B)",
            file=sys.stderr,
        )


def main(argv: list[str] | None = None) -> int:
    """Train once with the sweep's (or the command line's) parameters; log to W&B."""
    given = parse_args(argv)
    project = given.pop("project", None)
    default_offline()

    import torch
    import wandb

    from wandb_batchsize.demo import tiny_task

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)  # the tiny model only loses time to thread hand-offs

    from wandb_batchsize import SusceptibilityMonitor
    from wandb_batchsize.tracking.sweeps import lr_from_config

    run = wandb.init(project=project or "wandb-batchsize-sweeps", config={**DEFAULTS, **given})
    cfg = dict(run.config)  # the sweep's values (WANDB_SWEEP_PARAM_PATH) are in here
    batch_size = int(cfg["batch_size"])
    lr = lr_from_config(cfg, default=DEFAULT_LR)
    if "lr" not in cfg:
        run.config.update({"lr": lr})  # the lr the rule gave, for the dashboard
    target = cfg.get("target")

    run.define_metric("train/step", hidden=True)
    run.define_metric("train/*", step_metric="train/step")
    monitor = (
        SusceptibilityMonitor(
            check_every=int(cfg["check_every"]),
            detrend=_detrend(cfg["monitor_detrend"]),
            log_to_wandb=True,
        )
        if cfg.get("monitor", True)
        else None
    )
    log_every = max(1, int(cfg["log_every"]))

    def on_step(step: int, loss: float, val_loss: float | None) -> None:
        if step % log_every == 0:
            row = {"train/step": step, "train/loss": loss}
            if val_loss is not None:
                row["train/val_loss"] = val_loss
            run.log(row)
        if monitor is not None:
            monitor.on_step(loss, step=step)

    data = tiny_task.make_data(int(cfg["n_train"]), data_seed=int(cfg["data_seed"]))
    result = tiny_task.train(
        batch_size,
        lr=lr,
        epochs=float(cfg["epochs"]),
        max_steps=None if cfg.get("max_steps") is None else int(cfg["max_steps"]),
        seed=int(cfg["seed"]),
        target=None if target is None else float(target),
        hidden=int(cfg["hidden"]),
        data=data,
        on_step=on_step,
    )
    if monitor is not None:
        monitor.finish(step=result.steps)
    run.log({"val/loss": result.val_loss, "val/accuracy": result.val_accuracy})
    run.summary["train/loss"] = result.train_loss
    run.summary["steps"] = result.steps
    run.summary["samples"] = result.samples
    if target is not None:
        run.summary["target_reached"] = result.steps_to_target is not None
        if result.steps_to_target is not None:
            run.summary["steps_to_target"] = result.steps_to_target
            run.summary["samples_to_target"] = result.samples_to_target
    print(
        f"batch_size={batch_size} lr={lr:.4g} steps={result.steps} "
        f"val/loss={result.val_loss:.4f}"
        + ("" if target is None else f" steps_to_target={result.steps_to_target}")
    )
    run.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
