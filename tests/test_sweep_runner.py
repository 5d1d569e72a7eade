"""Running a sweep config offline: parameter sets, the agent's command line, param files."""

from __future__ import annotations

import sys
import textwrap

import pytest
import yaml

from wandb_batchsize.tracking.offline import iter_run_dirs, read_run
from wandb_batchsize.tracking.sweep_runner import (
    LocalSweepError,
    build_command,
    grid_parameter_sets,
    parameter_sets,
    random_parameter_sets,
    resolve_program,
    run_sweep_locally,
)
from wandb_batchsize.tracking.sweeps import batch_size_sweep


def test_grid_is_the_product_in_wandb_order():
    config = batch_size_sweep(64, min_batch=8, repeats=2, base_lr=0.1)
    sets = grid_parameter_sets(config)
    assert len(sets) == 4 * 2
    # parameters sorted by name, the first varying slowest (sweeps/grid_search.py)
    assert list(sets[0]) == ["batch_size", "lr", "seed"]
    assert [(s["batch_size"], s["seed"]) for s in sets[:3]] == [(8, 0), (8, 1), (16, 0)]
    assert all(s["lr"] == 0.1 for s in sets)


def test_grid_expands_int_and_q_uniform():
    config = {
        "method": "grid",
        "parameters": {
            "a": {"min": 1, "max": 3},
            "b": {"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.5},
        },
    }
    assert grid_parameter_sets(config) == [{"a": a, "b": b} for a in (1, 2, 3) for b in (0.0, 0.5)]


def test_random_sets_are_seeded_and_counted():
    config = batch_size_sweep(256, method="random", repeats=2)
    first = random_parameter_sets(config, 5, seed=3)
    assert first == random_parameter_sets(config, 5, seed=3)
    assert all(s["batch_size"] in (8, 16, 32, 64, 128, 256) for s in first)
    # no count: one draw per grid point when every parameter is discrete
    assert len(parameter_sets(config)) == 6 * 2
    continuous = {"method": "random", "parameters": {"lr": {"min": 0.01, "max": 0.1}}}
    with pytest.raises(LocalSweepError, match="needs a run count"):
        parameter_sets(continuous)
    assert 0.01 <= parameter_sets(continuous, count=1)[0]["lr"] <= 0.1


def test_methods_that_cannot_run_locally():
    with pytest.raises(LocalSweepError, match="bayes' needs W&B's server-side controller"):
        parameter_sets(batch_size_sweep(256, method="bayes"))
    nested = {"method": "grid", "parameters": {"opt": {"parameters": {"lr": {"value": 1}}}}}
    with pytest.raises(LocalSweepError, match="nested parameter"):
        parameter_sets(nested)


def test_command_is_built_as_wandbs_agent_builds_it(tmp_path, monkeypatch):
    params = {"batch_size": 64, "flag": False, "seed": 1}
    program = tmp_path / "train.py"
    default = build_command({}, params, program=program, args_json_file=tmp_path / "a.json")
    assert default[-5:] == [
        sys.executable,
        str(program),
        "--batch_size=64",
        "--flag=False",
        "--seed=1",
    ]
    monkeypatch.setenv("MY_FLAG", "fast")
    custom = {
        "command": [
            "${interpreter}",
            "-u",
            "${program}",
            "--mode=${envvar:MY_FLAG}",
            "${args_no_hyphens}",
            "${args_no_boolean_flags}",
            "${args_json_file}",
        ]
    }
    cmd = build_command(custom, params, program=program, args_json_file=tmp_path / "a.json")
    assert cmd == [
        sys.executable,
        "-u",
        str(program),
        "--mode=fast",
        "batch_size=64",
        "flag=False",
        "seed=1",
        "--batch_size=64",
        "--seed=1",
        str(tmp_path / "a.json"),
    ]


def test_program_lookup(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "train.py").write_text("")
    assert (
        resolve_program("train.py", [tmp_path, tmp_path / "sub"]) == tmp_path / "sub" / "train.py"
    )
    with pytest.raises(LocalSweepError, match="program 'nope.py' not found"):
        resolve_program("nope.py", [tmp_path])


PROGRAM = textwrap.dedent(
    """
    import sys, wandb
    run = wandb.init(config={"batch_size": 1, "note": "default"})
    if run.config["batch_size"] == 32:
        sys.exit(3)                       # one run fails on purpose
    run.log({"val/loss": 1.0 / run.config["batch_size"], "argv": " ".join(sys.argv[1:])})
    run.finish()
    """
)


def test_runs_get_the_agent_parameters_through_wandb_init(wandb_env, monkeypatch):
    """A program with no sweep code at all sees the sweep's values in wandb.config."""
    monkeypatch.setenv("WANDB_X_DISABLE_STATS", "true")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    (wandb_env / "prog.py").write_text(PROGRAM)
    config = batch_size_sweep(64, program="prog.py", extra_parameters={"note": "swept"})
    seen = []
    done = run_sweep_locally(
        config,
        group="g-test",
        wandb_dir=wandb_env,
        base_dir=wandb_env,
        jobs=2,
        on_trial=lambda outcome, total: seen.append((outcome.index, total)),
    )
    assert sorted(seen) == [(i, 4) for i in range(4)]
    assert (done.n_finished, done.n_failed) == (3, 1)
    failed = [o for o in done.outcomes if not o.ok]
    assert failed[0].params["batch_size"] == 32 and failed[0].returncode == 3
    assert "failed (exit 3)" in failed[0].describe()

    # the agent's parameter file: {key: {value: v}} under wandb/sweep-<group>/
    params_file = done.sweep_dir / f"config-{done.outcomes[0].run_id}.yaml"
    assert yaml.safe_load(params_file.read_text())["batch_size"] == {"value": 8}

    runs = {r.run_id: r for r in (read_run(d) for d in iter_run_dirs(wandb_env))}
    assert set(runs) == {o.run_id for o in done.outcomes}  # WANDB_RUN_ID honoured
    for outcome in done.outcomes:
        run = runs[outcome.run_id]
        assert run.group == "g-test" and run.job_type == "sweep-run"
        assert run.config["batch_size"] == outcome.params["batch_size"]
        assert run.config["note"] == "swept"  # the sweep value beat the program's default
        assert run.sweep_id == ""  # no fake sweep id that a later `wandb sync` would chase
        if outcome.ok:
            assert run.finished
            assert "--batch_size=" in run.summary["argv"]  # ${args}, as the agent passes them
        else:
            assert run.exit_code == 3


def test_timeout_and_missing_program(wandb_env):
    (wandb_env / "slow.py").write_text("import time; time.sleep(30)\n")
    config = batch_size_sweep(64, program="slow.py")
    done = run_sweep_locally(config, wandb_dir=wandb_env, base_dir=wandb_env, count=1, timeout=0.5)
    assert done.outcomes[0].returncode is None and "timed out" in done.outcomes[0].describe()
    with pytest.raises(LocalSweepError, match="not found"):
        run_sweep_locally(batch_size_sweep(64, program="absent.py"), wandb_dir=wandb_env)


def test_cli_run_dry_run_and_errors(tmp_path, capsys):
    from wandb_batchsize.cli import main

    path = tmp_path / "bs.yaml"
    assert main(["sweep", "create", "--max-batch", "64", "--repeats", "2", "-o", str(path)]) == 0
    assert main(["sweep", "run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "[1/8] --batch_size=8 --seed=0" and len(out) == 8
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: grid\nparameters: {'a/b': {value: 1}}\n")
    assert main(["sweep", "run", str(bad)]) == 2
    assert "invalid W&B sweep config" in capsys.readouterr().err
    assert main(["sweep", "run", str(tmp_path / "none.yaml")]) == 2
    bayes = tmp_path / "bayes.yaml"
    assert (
        main(["sweep", "create", "--max-batch", "64", "--method", "bayes", "-o", str(bayes)]) == 0
    )
    assert main(["sweep", "run", str(bayes)]) == 2
    assert "server-side controller" in capsys.readouterr().err


def test_cli_create(tmp_path, capsys):
    from wandb_batchsize.cli import main

    assert (
        main(
            [
                "sweep",
                "create",
                "--max-batch",
                "512",
                "--min-batch",
                "16",
                "--lr-scaling",
                "sqrt",
                "--base-lr",
                "0.05",
                "--param",
                "epochs=2",
                "--param-values",
                "opt=sgd,adam",
                "--metric",
                "steps_to_target",
                "--target",
                "0.5",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    config = yaml.safe_load(text)
    assert config["parameters"]["batch_size"]["values"] == [16, 32, 64, 128, 256, 512]
    assert config["parameters"]["epochs"] == {"value": 2}
    assert config["parameters"]["opt"] == {"values": ["sgd", "adam"]}
    assert config["parameters"]["target"] == {"value": 0.5}
    assert text.startswith("# W&B sweep config")
    for argv, message in [
        (["--max-batch", "8", "--min-batch", "64"], "larger than max_batch"),
        (["--max-batch", "100", "--min-batch", "65"], "grid is empty"),
        (["--max-batch", "64", "--method", "anneal"], "unknown sweep method"),
        (["--max-batch", "64", "--param", "novalue"], "--param takes KEY=VALUE"),
        (["--max-batch", "64", "--batch-sizes", "8,x"], "comma-separated integers"),
    ]:
        assert main(["sweep", "create", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1


def test_sweep_without_action_prints_help(capsys):
    from wandb_batchsize.cli import main

    assert main(["sweep"]) == 2
    assert "create" in capsys.readouterr().out
