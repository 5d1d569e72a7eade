"""measure_critical_batch(max_batch_size="memory"): the grid stops at the memory ceiling."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from test_critical_torch import exact_val, half_mse, regression_model, sample  # noqa: E402

import wandb_batchsize as wbs  # noqa: E402


def test_the_grid_tops_out_at_the_memory_ceiling():
    model = regression_model()
    before = model.weight.detach().clone()
    result = wbs.measure_critical_batch(
        model,
        sample,
        half_mse,
        val_data=exact_val(),
        lr=1 / 32,
        reference_batch=4,
        max_batch_size="memory",
        # a 64 ceiling by the search's own cap: the plumbing, not this machine's memory
        memory_options={"max_batch_size": 64, "min_batch_size": 4},
        max_steps=300,
        repeats=1,
        log_to_wandb=False,
        verbose=False,
    )
    sizes = sorted({row.batch_size for row in result.table})
    assert sizes[0] == 4 and sizes[-1] <= 64
    assert torch.equal(model.weight, before)
