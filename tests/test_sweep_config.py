"""Batch-size sweep configs: the grid, the lr rule, and W&B's own schema."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from wandb_batchsize.tracking.sweeps import (
    SCHEMA_PATH,
    SweepConfigError,
    batch_size_sweep,
    dump_sweep_config,
    load_sweep_config,
    lr_from_config,
    power_of_two_grid,
    scaled_lr,
    sweep_config_violations,
    validate_sweep_config,
)

REPO = Path(__file__).resolve().parents[1]


def raw_schema_errors(config):
    """W&B's schema applied directly with jsonschema: an independent check of our wrapper."""
    schema = json.loads(SCHEMA_PATH.read_text())
    return [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(config)]


# -- the grid -----------------------------------------------------------------------


def test_powers_of_two_bounded_by_the_ceiling():
    config = batch_size_sweep(1024)
    assert config["parameters"]["batch_size"] == {"values": [8, 16, 32, 64, 128, 256, 512, 1024]}
    # a ceiling that is not a power of two is never exceeded
    assert batch_size_sweep(1000)["parameters"]["batch_size"]["values"][-1] == 512
    # min_batch is rounded up to a power of two
    assert batch_size_sweep(256, min_batch=12)["parameters"]["batch_size"]["values"] == [
        16,
        32,
        64,
        128,
        256,
    ]
    assert power_of_two_grid(5, 1) == [1, 2, 4]


def test_ceiling_from_a_memory_search_result():
    class Found:
        batch_size = 200

    assert batch_size_sweep(Found())["parameters"]["batch_size"]["values"] == [8, 16, 32, 64, 128]


def test_explicit_batch_sizes_are_sorted_deduplicated_and_bounded():
    config = batch_size_sweep(512, batch_sizes=[96, 24, 48, 48, 384, 192])
    assert config["parameters"]["batch_size"]["values"] == [24, 48, 96, 192, 384]
    with pytest.raises(ValueError, match=r"outside \[min_batch, max_batch\] = \[8, 256\]"):
        batch_size_sweep(256, batch_sizes=[16, 32, 64, 512])
    with pytest.raises(ValueError, match="positive integers"):
        batch_size_sweep(256, batch_sizes=[16, 32, 64.5, 128])


def test_repeats_become_seeds():
    assert batch_size_sweep(256, repeats=3)["parameters"]["seed"] == {"values": [0, 1, 2]}
    assert batch_size_sweep(256)["parameters"]["seed"] == {"value": 0}


def test_metric_goal_program_and_extra_parameters():
    config = batch_size_sweep(
        256,
        metric="val/acc",
        goal="maximize",
        program="train.py",
        extra_parameters={"epochs": 2, "opt": {"values": ["sgd", "adam"]}},
        name="demo",
        project="p",
        entity="e",
    )
    assert config["metric"] == {"name": "val/acc", "goal": "maximize"}
    assert config["program"] == "train.py"
    assert config["parameters"]["epochs"] == {"value": 2}
    assert config["parameters"]["opt"] == {"values": ["sgd", "adam"]}
    assert (config["name"], config["project"], config["entity"]) == ("demo", "p", "e")


# -- invalid requests ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_batch": 64, "min_batch": 128}, r"min_batch \(128\) is larger than max_batch \(64\)"),
        ({"max_batch": 100, "min_batch": 65}, "grid is empty"),
        ({"max_batch": 32}, "has 3 sizes; sweep-mode analysis needs at least 4"),
        ({"max_batch": 256, "method": "hyperband"}, "unknown sweep method 'hyperband'"),
        ({"max_batch": 256, "goal": "lower"}, "unknown goal"),
        ({"max_batch": 256, "repeats": 0}, "repeats must be an integer >= 1"),
        ({"max_batch": 0, "min_batch": 1}, "max_batch must be >= 1"),
        ({"max_batch": 2.5}, "max_batch must be a positive integer"),
        ({"max_batch": 256, "lr_scaling": "cubic", "base_lr": 0.1}, "unknown lr_scaling"),
        ({"max_batch": 256, "lr_scaling": "linear"}, "needs base_lr"),
        ({"max_batch": 256, "base_batch": 8}, "only apply with lr_scaling"),
        (
            {"max_batch": 256, "extra_parameters": {"batch_size": 3}},
            "may not redefine 'batch_size'",
        ),
        ({"max_batch": 256, "extra_parameters": {"opt/lr": 3}}, "not allowed by W&B"),
        ({"max_batch": 256, "metric": ""}, "metric must be a non-empty"),
    ],
)
def test_invalid_requests_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        batch_size_sweep(**kwargs)


# -- the learning-rate rule ----------------------------------------------------------


def test_scaled_lr_rules():
    assert scaled_lr(256, base_lr=0.1, base_batch=32, lr_scaling="linear") == pytest.approx(0.8)
    assert scaled_lr(128, base_lr=0.1, base_batch=32, lr_scaling="sqrt") == pytest.approx(0.2)
    assert scaled_lr(128, base_lr=0.1, base_batch=32) == 0.1
    assert scaled_lr(256, base_lr=0.1, base_batch=32, lr_scaling="linear", max_lr=0.5) == 0.5
    with pytest.raises(ValueError, match="unknown lr_scaling"):
        scaled_lr(8, base_lr=0.1, base_batch=8, lr_scaling="log")


def test_lr_rule_is_passed_as_constants_and_applied_by_the_program():
    config = batch_size_sweep(512, lr_scaling="sqrt", base_lr=0.05, base_batch=32, max_lr=0.15)
    params = config["parameters"]
    assert params["lr_scaling"] == {"value": "sqrt"}
    assert params["base_lr"] == {"value": 0.05}
    assert params["base_batch"] == {"value": 32}
    assert params["max_lr"] == {"value": 0.15}
    assert "lr" not in params  # a grid cannot tie lr to batch_size: the program computes it
    # what a run's wandb.config holds: the grid's batch_size plus the constants
    run_config = {k: v["value"] for k, v in params.items() if "value" in v}
    assert lr_from_config({**run_config, "batch_size": 128}) == pytest.approx(0.1)
    assert lr_from_config({**run_config, "batch_size": 512}) == pytest.approx(0.15)  # capped
    # base_batch defaults to the smallest batch; no scaling gives a constant lr
    assert batch_size_sweep(256, lr_scaling="linear", base_lr=0.1)["parameters"]["base_batch"] == {
        "value": 8
    }
    assert batch_size_sweep(256, base_lr=0.3)["parameters"]["lr"] == {"value": 0.3}
    assert lr_from_config({"lr": 0.2, "base_lr": 1.0, "batch_size": 64}) == 0.2
    assert lr_from_config({"batch_size": 64}, default=0.01) == 0.01


# -- W&B's schema ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["grid", "random", "bayes"])
def test_generated_configs_satisfy_wandb_schema(method):
    config = batch_size_sweep(
        2048,
        min_batch=4,
        method=method,
        repeats=3,
        lr_scaling="linear",
        base_lr=0.01,
        base_batch=4,
        max_lr=1.0,
        target=0.5,
        extra_parameters={"epochs": 3},
        name="bs",
        project="proj",
    )
    assert sweep_config_violations(config) == []
    assert raw_schema_errors(config) == []
    # and after a YAML round trip, as `wandb sweep` reads it
    assert yaml.safe_load(dump_sweep_config(config)) == config


def test_vendored_schema_is_wandbs():
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$id"] == "http://dev.wandb.com/schema/config.json"
    assert schema["title"] == "SweepConfig"
    licence = (SCHEMA_PATH.parent / "LICENSE-sweeps.txt").read_text()
    assert "MIT License" in licence and "Weights and Biases" in licence


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"parameters": {"a": {"value": 1}}}, "'method' is a required property"),
        ({"method": "grid", "parameters": {}}, "should be non-empty"),
        ({"method": "grid", "parameters": {"opt/lr": {"value": 1}}}, "does not match"),
        (
            {"method": "grid", "parameters": {"a": {"value": 1}}, "run_count": 3},
            "Additional properties are not allowed",
        ),
        (
            {"method": "random", "parameters": {"a": {"min": 2, "max": 1}}},
            "a: min 2 is not less than max 1",
        ),
        (
            {"method": "grid", "parameters": {"a": {"min": 0.1, "max": 1.0}}},
            "grid search needs discrete parameters",
        ),
        (
            {
                "method": "random",
                "parameters": {"a": {"distribution": "log_uniform", "min": 0, "max": 1}},
            },
            "deprecated",
        ),
        (
            {
                "method": "random",
                "parameters": {"a": {"values": [1, 2], "probabilities": [0.5, 0.2]}},
            },
            "do not sum to 1",
        ),
        (
            {"method": "grid", "metric": {"goal": "minimize"}, "parameters": {"a": {"value": 1}}},
            "'name' is a required property",
        ),
    ],
)
def test_invalid_configs_are_reported(config, fragment):
    violations = sweep_config_violations(config)
    assert any(fragment in v for v in violations), violations
    with pytest.raises(SweepConfigError, match="invalid W&B sweep config"):
        validate_sweep_config(config)


def test_schema_rules_agree_with_raw_schema_on_schema_errors():
    bad = {"method": "annealing", "parameters": {"a": {"value": 1}}}
    assert raw_schema_errors(bad)
    assert sweep_config_violations(bad)


# -- the shipped templates -------------------------------------------------------------


@pytest.mark.parametrize("name", ["bs.yaml", "bs_sqrt.yaml", "bs_steps.yaml"])
def test_templates_are_valid_and_point_at_the_program(name):
    config = load_sweep_config(REPO / "sweeps" / name)
    assert (REPO / config["program"]).exists()
    sizes = config["parameters"]["batch_size"]["values"]
    assert len(sizes) >= 4 and all(b & (b - 1) == 0 for b in sizes)


def test_load_sweep_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no sweep config"):
        load_sweep_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: [grid\n")
    with pytest.raises(SweepConfigError, match="not valid YAML"):
        load_sweep_config(bad)


def test_importing_sweeps_needs_no_wandb_or_torch():
    code = (
        "import sys, wandb_batchsize.tracking.sweeps as s; "
        "s.batch_size_sweep(1024); "
        "print(sorted(m for m in ('wandb', 'torch', 'tensorflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_lr_is_finite_for_every_template_batch():
    config = load_sweep_config(REPO / "sweeps" / "bs_steps.yaml")
    constants = {k: v["value"] for k, v in config["parameters"].items() if "value" in v}
    for b in config["parameters"]["batch_size"]["values"]:
        lr = lr_from_config({**constants, "batch_size": b})
        assert math.isfinite(lr) and 0 < lr <= constants["max_lr"]


def test_without_jsonschema_the_main_rules_still_apply(monkeypatch):
    from wandb_batchsize.tracking import sweep_schema

    monkeypatch.setitem(sys.modules, "jsonschema", None)  # as if it were not installed
    sweep_schema._validator.cache_clear()
    monkeypatch.setattr(sweep_schema, "_WARNED_NO_JSONSCHEMA", False)
    try:
        with pytest.warns(RuntimeWarning, match="jsonschema is not installed"):
            assert sweep_config_violations(batch_size_sweep(256, repeats=2)) == []
        violations = sweep_config_violations(
            {"method": "anneal", "parameters": {"a/b": {"value": 1}}, "metric": {"goal": "up"}}
        )
        assert len(violations) == 3
        assert sweep_config_violations({"parameters": {"a": {"min": 3, "max": 1}}}) == [
            "'method' is a required property",
            "a: min 3 is not less than max 1",
        ]
    finally:
        sweep_schema._validator.cache_clear()
