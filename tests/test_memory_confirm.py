"""The returned size is confirmed by training steps after the search, and the output says so.

The capacity loss after a search is simulated here by a module whose limit
drops once it has run out of memory (as a fragmented allocator's does); the
real one, under an address-space cap with the default allocator, is in
test_memory_capped_default.py.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from conftest import run_dir_of  # noqa: E402
from test_memory_torch import assert_same, capture  # noqa: E402
from torch import nn  # noqa: E402

import wandb_batchsize as wbs  # noqa: E402
from wandb_batchsize.memory import NoBatchSizeFitsError, ProbeOutcome, step_down  # noqa: E402
from wandb_batchsize.memory.confirm import confirm  # noqa: E402
from wandb_batchsize.tracking import keys  # noqa: E402
from wandb_batchsize.tracking.offline import read_run  # noqa: E402


def test_step_down_by_the_tolerance_then_halving_the_gap():
    # 224 -> floor(224 * 0.98) = 219 -> 216 (multiple of 8); then 2 + (216 - 2) // 2 = 109 -> 104
    assert step_down(224, 0, min_batch_size=2, tolerance=0.02, multiple_of=8) == 216
    assert step_down(216, 1, min_batch_size=2, tolerance=0.02, multiple_of=8) == 104
    assert step_down(104, 2, min_batch_size=2, tolerance=0.02, multiple_of=8) == 48
    assert step_down(5, 1, min_batch_size=2, tolerance=0.02, multiple_of=8) == 3
    assert step_down(100, 0, min_batch_size=2, tolerance=0.0, multiple_of=1) == 99  # >= 1 % down
    assert step_down(2, 3, min_batch_size=2, tolerance=0.02) is None
    sizes, size = [], 1000
    while size is not None:  # always decreasing, ends at the minimum
        sizes.append(size)
        size = step_down(size, len(sizes) - 1, min_batch_size=3, tolerance=0.05, multiple_of=8)
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] == 3 and len(sizes) < 12


def test_confirm_steps_down_until_an_attempt_fits():
    calls = []

    def attempt(b):
        calls.append(b)
        return ProbeOutcome(fitted=b <= 100, error=None if b <= 100 else "OOM")

    got = confirm(attempt, 224, steps=3, min_batch_size=2, tolerance=0.02, multiple_of=8)
    assert calls == [224, 216, 104, 48]
    assert got.confirmed and got.batch_size == 48 and got.step_downs == (224, 216, 104)
    none = confirm(
        lambda b: ProbeOutcome(False, error="OOM"), 8, steps=3, min_batch_size=2, tolerance=0.02
    )
    assert not none.confirmed and none.step_downs[-1] == 2
    skipped = confirm(attempt, 224, steps=0, min_batch_size=2, tolerance=0.02)
    assert skipped.batch_size == 224 and not skipped.confirmed and not skipped.step_downs


class Shrinking(nn.Module):
    """OOM above ``limit`` samples; after the first OOM the limit drops to ``after``."""

    def __init__(self, limit: int, after: int) -> None:
        super().__init__()
        self.limit, self.after, self.sizes = limit, after, []

    def forward(self, x):
        self.sizes.append(x.shape[0])
        if x.shape[0] > self.limit:
            self.limit = self.after
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return x


@pytest.fixture
def no_readings(monkeypatch):
    """Doubling + bisection: the probed sizes do not depend on /proc readings."""
    monkeypatch.setenv("WANDB_BATCHSIZE_NO_PROCESS_METER", "1")


def shrinking_model(limit=300, after=150):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), Shrinking(limit, after), nn.Linear(16, 3))


def batch():
    return torch.randn(4, 8), torch.randint(0, 3, (4,))


def test_a_size_that_no_longer_fits_after_the_search_is_stepped_down(
    offline_run, capsys, no_readings
):
    model = shrinking_model()
    opt = trained_linear(model)
    sample = batch()
    before = capture(model, opt)
    result = wbs.find_batch_size(model, sample, optimizer=opt, verbose=True)
    out = capsys.readouterr().out
    assert_same(before, capture(model, opt))  # restored after every confirmation attempt too
    # 2 .. 256 fit, 512 does not (the limit drops to 150), nothing above 256 fits any more
    assert result.max_fitting == 256 and result.searched_batch_size == 224
    assert result.step_downs == (224, 216) and result.batch_size == 104
    assert result.confirmed and result.confirm_steps == 3
    assert result.batch_size <= 150 < min(result.step_downs)
    assert result.step_downs[0] == result.searched_batch_size
    # the confirmed size ran 3 steps; the sizes that failed were tried in the step-down order
    assert model[1].sizes[-3:] == [result.batch_size] * 3
    assert "stepped down after the search" in out and "3 training steps ran at it" in out
    assert result.config["batch_size"] == result.batch_size
    offline_run.finish()
    run = read_run(run_dir_of(offline_run))
    assert run.summary[keys.BATCH_FINDER_CONFIRMED] is True
    assert run.summary[keys.BATCH_FINDER_CONFIRM_STEPS] == 3
    assert run.summary[keys.BATCH_FINDER_STEP_DOWNS] == len(result.step_downs)
    assert run.summary[keys.BATCH_FINDER_STEP_DOWN_SIZES] == list(result.step_downs)
    assert run.summary[keys.BATCH_FINDER_OPTIMAL] == result.batch_size
    assert run.config["batch_size"] == result.batch_size


def trained_linear(model):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = batch()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    return opt


def test_nothing_fits_after_the_search_is_a_clear_error(no_readings):
    model = shrinking_model(limit=64, after=0)
    with pytest.raises(NoBatchSizeFitsError, match="after it not even min_batch_size=2"):
        wbs.find_batch_size(model, batch(), verbose=False, log_to_wandb=False)


def test_confirm_steps_zero_skips_the_confirmation(no_readings):
    model = shrinking_model()
    result = wbs.find_batch_size(model, batch(), confirm_steps=0, verbose=False, log_to_wandb=False)
    assert not result.confirmed and result.batch_size == result.searched_batch_size == 224


def test_cap_reached_is_not_called_optimal(capsys, offline_run):
    model = shrinking_model(limit=10_000)
    result = wbs.find_batch_size(model, batch(), max_batch_size=512)
    out = capsys.readouterr().out
    assert result.cap_reached and result.batch_size == 512 and result.confirmed
    assert "optimal batch size" not in out
    assert "the cap was reached; the true ceiling is higher" in out
    assert "the max_batch_size cap, not a memory ceiling" in out
    offline_run.finish()
    assert read_run(run_dir_of(offline_run)).summary[keys.BATCH_FINDER_CAP_REACHED] is True


def test_cpu_table_does_not_show_rss_growth_as_peak_memory(capsys):
    from wandb_batchsize.backends.host_memory import process_meter_supported

    if not process_meter_supported():
        pytest.skip("no /proc/self/clear_refs: no process readings to label")
    wbs.find_batch_size(shrinking_model(), batch(), log_to_wandb=False)
    out = capsys.readouterr().out
    assert "peak memory" not in out
    assert "resident-set growth" in out and "not the step's memory" in out
    assert "MiB " not in out.split("searching batch sizes")[1]  # no per-probe readings shown


def test_bad_confirm_steps():
    with pytest.raises(ValueError, match="confirm_steps must be an integer >= 0"):
        wbs.find_batch_size(shrinking_model(), batch(), confirm_steps=-1, log_to_wandb=False)
