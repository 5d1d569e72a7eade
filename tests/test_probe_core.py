"""The framework-free probe core: sizes, budget, the driver loop, the result.

The driver is tested here with a pure-Python backend (no framework): it checks
the control flow only (restore before every probe and at the end, an OOM
skips the larger sizes, other errors propagate). The real OOM, under an
address-space cap, is in ``test_probe_oom.py``.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from wandb_batchsize.probe.core import (
    BudgetPlan,
    Progress,
    TrainOutcome,
    build_result,
    default_batch_sizes,
    last_third_mean,
    lr_factor,
    plan_budget,
    resolve_batch_sizes,
    run_probes,
)


def test_default_sizes_are_powers_of_two_bounded_by_data_and_ceiling():
    assert default_batch_sizes(100_000) == [8, 16, 32, 64, 128, 256, 512, 1024]
    assert default_batch_sizes(100_000, max_batch=4096)[-1] == 4096
    assert default_batch_sizes(100_000, max_batch=300) == [8, 16, 32, 64, 128, 256]
    assert default_batch_sizes(100) == [8, 16, 32, 64]
    # too few sizes from 8 up: extend downwards so the sweep can be analysed
    assert default_batch_sizes(20) == [2, 4, 8, 16]
    assert default_batch_sizes(3) == [1, 2]


def test_given_sizes_are_sorted_and_the_impossible_ones_left_out_with_why():
    sizes, left = resolve_batch_sizes([64, 8, 16, 8, 5000, 2048], n_samples=3000, max_batch=1024)
    assert sizes == [8, 16, 64]
    assert "larger than the dataset" in left[5000] and "above the memory ceiling" in left[2048]

    class Ceiling:  # a MemorySearchResult converts with int()
        def __int__(self) -> int:
            return 32

    assert resolve_batch_sizes(None, n_samples=None, max_batch=Ceiling())[0] == [4, 8, 16, 32]
    with pytest.raises(ValueError, match="positive integers"):
        resolve_batch_sizes([8, 0], n_samples=None, max_batch=None)
    with pytest.raises(ValueError, match="none of the batch sizes"):
        resolve_batch_sizes([4096], n_samples=100, max_batch=None)


def test_equal_samples_budget_gives_every_size_the_same_data():
    plan = plan_budget([8, 16, 32, 64], steps_per_size=10)
    assert plan.samples_per_size == 640  # steps_per_size x the largest size
    assert plan.steps == {8: 80, 16: 40, 32: 20, 64: 10}
    assert {plan.samples(b) for b in plan.batch_sizes} == {640}


def test_equal_steps_budget_is_the_published_behaviour():
    plan = plan_budget([8, 16, 32, 64], budget="steps", steps_per_size=10)
    assert set(plan.steps.values()) == {10}
    assert [plan.samples(b) for b in plan.batch_sizes] == [80, 160, 320, 640]


def test_a_size_the_sample_budget_cannot_cover_is_left_out():
    plan = plan_budget([8, 16, 512], samples_per_size=1000)
    assert plan.batch_sizes == [8, 16]
    assert "only 1 step" in plan.left_out[512] and "1536" in plan.left_out[512]
    with pytest.raises(ValueError, match="too small for every size"):
        plan_budget([512], samples_per_size=100)
    with pytest.raises(ValueError, match="budget must be one of"):
        plan_budget([8], budget="epochs")
    with pytest.raises(ValueError, match="steps_per_size must be >= 3"):
        plan_budget([8], steps_per_size=2)


def test_lr_factor_and_last_third():
    assert lr_factor(64, 16, None) == 1.0
    assert lr_factor(64, 16, "linear") == pytest.approx(4.0)
    assert lr_factor(64, 16, "sqrt") == pytest.approx(2.0)
    with pytest.raises(ValueError, match="lr_scaling"):
        lr_factor(64, 16, "cubic")
    assert last_third_mean([9, 9, 9, 9, 1, 2]) == pytest.approx(1.5)  # last 6 // 3 = 2 values
    assert last_third_mean([5.0, 3.0]) == 3.0  # at least one value
    assert math.isnan(last_third_mean([]))


class FakeBackend:
    """Records calls; 'trains' by returning a loss that grows with the batch size."""

    def __init__(self, oom_at: int | None = None, fail_at: int | None = None) -> None:
        self.calls: list[str] = []
        self.oom_at, self.fail_at = oom_at, fail_at

    def restore(self) -> None:
        self.calls.append("restore")

    def train(self, b, steps, seed, factor, on_step):
        self.calls.append(f"train {b} {seed}")
        if b == self.fail_at:
            raise ValueError("a bug in the user's loss")
        if self.oom_at is not None and b >= self.oom_at:
            raise MemoryError("cannot allocate")
        for i in range(steps):
            on_step(i + 1)
        loss = math.log(b) + 0.01 * seed
        return TrainOutcome([loss] * steps, seconds=0.1, warmup_seconds=0.01, lr=0.1 * factor)

    def is_oom(self, exc: BaseException) -> bool:
        from wandb_batchsize.memory.oom import is_oom_error

        return is_oom_error(exc)

    def release(self, exc=None) -> None:
        self.calls.append("release")


def test_driver_restores_before_each_probe_and_varies_the_seed_by_repeat():
    backend = FakeBackend()
    plan = plan_budget([8, 16], samples_per_size=64)
    records = run_probes(backend, plan, repeats=2, seed=5, lr_scaling="linear")
    assert backend.calls == [
        "restore", "train 8 5", "restore", "train 8 6",
        "restore", "train 16 5", "restore", "train 16 6",
        "restore", "release",
    ]  # fmt: skip
    assert [(r.batch_size, r.seed, r.steps, r.samples) for r in records] == [
        (8, 5, 8, 64), (8, 6, 8, 64), (16, 5, 4, 64), (16, 6, 4, 64),
    ]  # fmt: skip
    assert [r.lr for r in records] == pytest.approx([0.1, 0.1, 0.2, 0.2])
    # throughput leaves the warm-up step out: 7 steps x 8 samples in 0.09 s
    assert records[0].throughput == pytest.approx(7 * 8 / 0.09)


def test_an_oom_is_recorded_and_larger_sizes_skipped():
    backend = FakeBackend(oom_at=32)
    plan = plan_budget([8, 16, 32, 64], samples_per_size=640)
    records = run_probes(backend, plan)
    assert [(r.batch_size, r.status) for r in records] == [
        (8, "ok"), (16, "ok"), (32, "oom"), (64, "skipped"),
    ]  # fmt: skip
    assert "MemoryError" in records[2].note and "32 already ran out" in records[3].note
    assert "train 64 0" not in backend.calls
    assert backend.calls[-2:] == ["restore", "release"]


def test_any_other_error_propagates_after_restoring():
    backend = FakeBackend(fail_at=16)
    with pytest.raises(ValueError, match="a bug in the user's loss"):
        run_probes(backend, plan_budget([8, 16, 32], samples_per_size=320))
    assert backend.calls[-2:] == ["restore", "release"]


def test_a_non_finite_loss_marks_the_probe_diverged():
    class Diverging(FakeBackend):
        def train(self, b, steps, seed, factor, on_step):
            losses = [1.0] * steps
            if b == 32:
                losses[-2] = float("nan")
            return TrainOutcome(losses, seconds=0.1, warmup_seconds=0.0)

    records = run_probes(Diverging(), plan_budget([8, 32], samples_per_size=320))
    assert [r.status for r in records] == ["ok", "diverged"]
    assert math.isnan(records[1].metric) and "step 9" in records[1].note


def test_fewer_than_four_sizes_keep_the_table_and_say_why():
    plan = plan_budget([8, 16, 32], samples_per_size=320)
    records = run_probes(FakeBackend(), plan)
    with pytest.warns(RuntimeWarning, match="needs at least 4 distinct sizes"):
        result = build_result(
            records, plan, metric="train_loss", framework="test", left_out={}, log_to_wandb=False
        )
    assert result.sweep is None and result.K_c is None and len(result.table()) == 3
    assert "only 3 batch size(s)" in result.message
    assert "No sweep analysis" in result.summary()


def test_the_result_aggregates_repeats_through_the_sweep_analysis():
    plan = plan_budget([8, 16, 32, 64, 128], samples_per_size=1280)
    records = run_probes(FakeBackend(), plan, repeats=3)
    result = build_result(
        records, plan, metric="train_loss", framework="test", left_out={}, log_to_wandb=False
    )
    sweep = result.sweep
    assert list(sweep.batch_sizes) == [8, 16, 32, 64, 128]
    assert list(sweep.counts) == [3] * 5
    assert sweep.metric_mean[0] == pytest.approx(math.log(8) + 0.01)
    rows = result.per_size()
    assert [r["n_runs"] for r in rows] == [3] * 5
    assert all(np.isfinite(r["metric_se"]) for r in rows)
    assert result.K_c == float(sweep.K_c)
    text = result.summary()
    assert "equal samples (1,280 per size)" in text and "K_c" in text


def test_progress_prints_one_line_per_size_and_no_bar_off_a_terminal(capsys):
    plan = plan_budget([8, 16, 32], samples_per_size=320)
    progress = Progress(enabled=True, stream=sys.stderr)
    progress.header(plan, 1, "train_loss", "test")
    run_probes(FakeBackend(oom_at=32), plan, progress=progress)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "3 sizes [8, 16, 32]" in lines[0] and "320 samples per size" in lines[0]
    assert lines[1].startswith("  B=8 ") and "train_loss=" in lines[1]
    assert lines[3].startswith("  B=32") and "oom" in lines[3]
    assert "\r" not in err  # capsys is not a terminal: no bar


def test_progress_draws_a_bar_on_a_terminal():
    import io

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    plan = plan_budget([8], samples_per_size=80)
    run_probes(FakeBackend(), plan, progress=Progress(enabled=True, stream=stream))
    text = stream.getvalue()
    assert "\r  B=8" in text and "10/10 steps" in text and "#" * 24 in text


def test_budget_plan_is_frozen():
    plan = BudgetPlan("samples", {8: 10}, 80)
    with pytest.raises(AttributeError):
        plan.budget = "steps"  # type: ignore[misc]
