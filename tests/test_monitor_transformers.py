"""Transformers SusceptibilityCallback: per-step losses from a real Trainer (tiny model, no
downloads), with logging_steps left alone."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_dir_of

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from wandb_batchsize.integrations.transformers import SusceptibilityCallback  # noqa: E402
from wandb_batchsize.tracking.offline import read_run  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models train fastest on one thread, and the CI machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class _Tokens(torch.utils.data.Dataset):
    def __init__(self, n: int = 512) -> None:
        gen = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, 32, (n, 8), generator=gen)
        self.labels = (self.ids[:, 0] >= 16).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


class _RecordingTrainer(transformers.Trainer):
    """Keeps what each training_step returned: the ground truth for the callback."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.returned: list[float] = []

    def training_step(self, *args, **kwargs):
        loss = super().training_step(*args, **kwargs)
        self.returned.append(float(loss))
        return loss


def _tiny_model():
    config = transformers.BertConfig(
        vocab_size=32,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


def _cpu_args(tmp_path, **overrides):
    """TrainingArguments of a quick CPU run that reports to W&B and saves nothing."""
    return transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        report_to="wandb",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
        **overrides,
    )


def test_trainer_callback_analyses_each_optimizer_step_loss(wandb_env, tmp_path):
    callback = SusceptibilityCallback(check_every=20, window=500, max_overhead=None)
    args = _cpu_args(tmp_path, max_steps=60, gradient_accumulation_steps=2, logging_steps=20)
    trainer = _RecordingTrainer(
        model=_tiny_model(), args=args, train_dataset=_Tokens(), callbacks=[callback]
    )
    trainer.train()
    import wandb

    run = wandb.run
    run.finish()

    # each step: the sum of its two micro-batch returns (each already divided by 2)
    per_step = np.asarray(trainer.returned).reshape(-1, 2).sum(axis=1)
    assert callback.n_steps == 60
    np.testing.assert_allclose(callback.values(), per_step, rtol=1e-6)
    # the Trainer's own logs are averages of exactly these values over logging_steps
    logged_means = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    np.testing.assert_allclose(logged_means, per_step.reshape(3, 20).mean(axis=1), rtol=1e-5)
    assert "training_step" not in vars(trainer)  # the Trainer's own method is back
    assert callback.history_steps == [20, 40, 60]

    logged = read_run(run_dir_of(run))
    assert logged.history_of("susceptibility/step") == [20, 40, 60]
    final = callback.result()
    assert logged.history_of("susceptibility/K_c")[-1] == final.K_c
    for key in ("kappa", "alpha", "tau_int", "p_iid", "significant"):
        assert len(logged.history_of(f"susceptibility/{key}")) == 3, key
    # report_to="wandb" defines a "*" glob against train/global_step; ours is explicit
    named = {m["name"]: m.get("step_metric") for m in logged.metrics if "name" in m}
    assert named["susceptibility/K_c"] == "susceptibility/step"
    assert logged.summary["susceptibility/final/K_c"] == final.K_c
    assert logged.summary["susceptibility/final/step"] == 60
    assert len(logged.table("susceptibility/chi_chart_table")["data"]) == len(final.K_values)


def test_without_a_trainer_on_the_stack_it_asks_for_attach():
    callback = SusceptibilityCallback(log_to_wandb=False)
    state = transformers.TrainerState()
    with pytest.warns(RuntimeWarning, match="attach"):
        callback.on_train_begin(None, state, None)


def test_the_defaults_give_checks_and_a_final_result_on_a_400_step_fine_tune(wandb_env, tmp_path):
    """Issue 14, item 1: with the default detrend a 400-step run used to log nothing
    (a 1000-step moving average needs 1019 steps); "auto" now fits the run's length."""
    callback = SusceptibilityCallback(check_every=100)
    args = _cpu_args(tmp_path, max_steps=400, logging_steps=100)
    trainer = transformers.Trainer(
        model=_tiny_model(), args=args, train_dataset=_Tokens(), callbacks=[callback]
    )
    trainer.train()
    import wandb

    run = wandb.run
    run.finish()

    steps = callback.history_steps  # the overhead budget may defer a check
    assert len(steps) >= 2 and steps[-1] == 400 and all(s % 100 == 0 for s in steps)
    final = callback.result()
    assert final.n > 300 and final.diagnostics["detrend"] == 80  # n // 5
    assert "moving average of 80 steps" in final.diagnostics["detrend_choice"]
    logged = read_run(run_dir_of(run))
    assert logged.history_of("susceptibility/step") == steps
    assert logged.history_of("susceptibility/detrend_window") == [s // 5 for s in steps]
    assert logged.summary["susceptibility/final/K_c"] == final.K_c
    assert logged.summary["susceptibility/final/detrend"] == "80"
    assert "n // 5" in logged.summary["susceptibility/final/detrend_choice"]
