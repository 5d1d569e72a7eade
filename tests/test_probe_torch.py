"""Real PyTorch probes on small generated data (CPU): state, budget, repeats, W&B."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from conftest import run_dir_of  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from wandb_batchsize.probe.torch_probe import probe_batch_sizes  # noqa: E402
from wandb_batchsize.tracking.offline import read_run  # noqa: E402

SIZES = [8, 16, 32, 64, 128]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_data(n: int = 1024, seed: int = 0) -> TensorDataset:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=gen)
    w = torch.randn(8, 3, generator=gen)
    y = torch.multinomial(torch.softmax(2 * x @ w, dim=1), 1, generator=gen).squeeze(1)
    return TensorDataset(x, y)


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(8, 32), nn.BatchNorm1d(32), nn.Tanh(), nn.Dropout(0.1), nn.Linear(32, 3)
    )


LOSS = nn.functional.cross_entropy


def test_model_optimizer_free_state_and_rng_are_restored_bitwise():
    model = make_model()
    data = make_data()
    # a state worth restoring: grads present, one layer frozen, mixed modes
    LOSS(model(data.tensors[0][:16]), data.tensors[1][:16]).backward()
    model[0].bias.requires_grad_(False)
    model.eval()
    model[3].train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    modes = [m.training for m in model.modules()]
    torch.manual_seed(123)
    random.seed(7)
    np.random.seed(9)
    rng = (torch.get_rng_state(), random.getstate(), np.random.get_state())

    result = probe_batch_sizes(
        model, data, LOSS, batch_sizes=SIZES, steps_per_size=6, verbose=False, log_to_wandb=False
    )

    assert result.K_c is not None
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key  # bitwise, incl. BN running stats
    for p, g in zip(model.parameters(), grads, strict=True):
        assert (p.grad is None and g is None) or torch.equal(p.grad, g)
    assert [m.training for m in model.modules()] == modes
    assert model[0].bias.requires_grad is False
    assert torch.equal(torch.get_rng_state(), rng[0])
    assert random.getstate() == rng[1]
    after = np.random.get_state()
    assert all(np.array_equal(a, b) for a, b in zip(after, rng[2], strict=True))


def test_equal_samples_budget_read_from_the_probe_table():
    result = probe_batch_sizes(
        make_model(), make_data(), LOSS, batch_sizes=SIZES, steps_per_size=5, verbose=False,
        log_to_wandb=False,
    )  # fmt: skip
    rows = result.table()
    assert [r["batch_size"] for r in rows] == SIZES
    assert {r["samples"] for r in rows} == {5 * 128}  # every size saw the same data
    assert [r["steps"] for r in rows] == [80, 40, 20, 10, 5]
    assert all(r["steps"] * r["batch_size"] == r["samples"] for r in rows)
    assert all(r["status"] == "ok" and r["seconds"] > 0 and r["throughput"] > 0 for r in rows)
    assert result.budget == "samples" and result.samples_per_size == 640

    published = probe_batch_sizes(
        make_model(), make_data(), LOSS, batch_sizes=SIZES, budget="steps", steps_per_size=5,
        verbose=False, log_to_wandb=False,
    )  # fmt: skip
    assert {r["steps"] for r in published.table()} == {5}
    assert [r["samples"] for r in published.table()] == [5 * b for b in SIZES]


def test_every_probe_starts_from_the_same_weights_and_seed():
    """A size gives the same metric alone as inside a sweep: nothing carries over."""
    data = make_data()
    kwargs = {"samples_per_size": 640, "verbose": False, "log_to_wandb": False}
    full = probe_batch_sizes(make_model(), data, LOSS, batch_sizes=SIZES, **kwargs)
    with pytest.warns(RuntimeWarning, match="at least 4"):
        alone = probe_batch_sizes(make_model(), data, LOSS, batch_sizes=[32], **kwargs)
    (row32,) = [r for r in full.records if r.batch_size == 32]
    assert alone.records[0].metric == row32.metric
    assert alone.records[0].train_loss == row32.train_loss


def test_repeats_vary_the_seed_and_are_aggregated_with_an_interval():
    result = probe_batch_sizes(
        make_model(), make_data(), LOSS, batch_sizes=SIZES, steps_per_size=4, repeats=3,
        seed=10, verbose=False, log_to_wandb=False, n_bootstrap=200,
    )  # fmt: skip
    assert len(result.records) == 15
    assert {r.seed for r in result.records} == {10, 11, 12}
    by_size = {}
    for r in result.records:
        by_size.setdefault(r.batch_size, []).append(r.metric)
    assert all(len(set(v)) == 3 for v in by_size.values())  # seeds change the outcome
    sweep = result.sweep
    assert list(sweep.counts) == [3] * 5
    assert np.allclose(sweep.metric_mean, [np.mean(by_size[b]) for b in SIZES])
    assert np.all(np.isfinite(sweep.metric_se)) and np.all(sweep.metric_se > 0)
    low, high = sweep.K_c_interval
    assert low <= sweep.K_c <= high
    assert sweep.n_runs == 15


def test_validation_metric_factory_input_and_lr_scaling():
    data = make_data()
    val = make_data(256, seed=1)

    def loader(b: int) -> DataLoader:
        return DataLoader(data, batch_size=b, shuffle=True)  # partial last batch: skipped

    result = probe_batch_sizes(
        make_model(), loader, LOSS, batch_sizes=[16, 32, 64, 128], steps_per_size=4,
        optimizer_cls=torch.optim.SGD, optimizer_kwargs={"lr": 0.05}, lr_scaling="sqrt",
        val_data=val, verbose=False, log_to_wandb=False,
    )  # fmt: skip
    assert result.metric == "val_loss"
    rows = result.table()
    assert all(r["val_loss"] == r["metric"] and r["val_loss"] > 0 for r in rows)
    assert [r["lr"] for r in rows] == pytest.approx(
        [0.05 * math.sqrt(b / 16) for b in (16, 32, 64, 128)]
    )
    assert {r["samples"] for r in rows} == {512}


def test_fewer_than_four_sizes_returns_the_table_without_analysis():
    with pytest.warns(RuntimeWarning, match="at least 4 distinct sizes"):
        result = probe_batch_sizes(
            make_model(), make_data(), LOSS, batch_sizes=[16, 32], steps_per_size=3,
            verbose=False, log_to_wandb=False,
        )  # fmt: skip
    assert result.sweep is None and len(result.records) == 2
    assert "needs at least 4" in result.message


def test_an_error_in_a_probe_propagates_and_the_model_is_restored():
    model = make_model()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    calls = {"n": 0}

    def flaky_loss(out, y):
        calls["n"] += 1
        if calls["n"] > 30:
            raise KeyboardInterrupt  # the user pressed Ctrl-C mid-probe
        return LOSS(out, y)

    with pytest.raises(KeyboardInterrupt):
        probe_batch_sizes(
            model, make_data(), flaky_loss, batch_sizes=SIZES, steps_per_size=4,
            verbose=False, log_to_wandb=False,
        )  # fmt: skip
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert model.training  # as it was


def test_a_dataloader_is_refused_with_advice():
    with pytest.raises(TypeError, match="factory"):
        probe_batch_sizes(make_model(), DataLoader(make_data(), batch_size=8), LOSS)


def test_progress_line_per_size(capsys):
    probe_batch_sizes(
        make_model(), make_data(), LOSS, batch_sizes=[8, 16, 32, 64], steps_per_size=3,
        log_to_wandb=False,
    )  # fmt: skip
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("probe_batch_sizes (pytorch): 4 sizes [8, 16, 32, 64]")
    assert [line.split()[0] for line in err[1:5]] == ["B=8", "B=16", "B=32", "B=64"]


def test_offline_wandb_run_has_the_table_the_chart_and_K_c(offline_run):
    result = probe_batch_sizes(
        make_model(), make_data(), LOSS, batch_sizes=SIZES, steps_per_size=4, verbose=False
    )
    offline_run.finish()
    logged = read_run(run_dir_of(offline_run))

    table = logged.table("probe/table")
    assert table["columns"][:5] == ["batch_size", "repeat", "seed", "status", "metric"]
    assert [row[0] for row in table["data"]] == SIZES
    assert [row[7] for row in table["data"]] == [512] * 5  # samples column
    chart = logged.table("probe/chi_chart_table")
    assert [row[0] for row in chart["data"]] == SIZES
    chi = [row[2] for row in chart["data"]]
    assert chi == pytest.approx(list(result.sweep.chi_values))
    assert (
        logged.visualizations()["probe/chi_chart"]["panel_config"]["panelDefId"] == "wandb/line/v0"
    )
    assert logged.summary["probe/K_c"] == result.K_c
    assert logged.summary["probe/metric"] == "train_loss"
    assert logged.summary["probe/samples_per_size"] == 512
