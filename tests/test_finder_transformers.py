"""Transformers ``fit_batch_size``: a real Trainer and tiny GPT-2 from a config, its own step.

- under ``RLIMIT_AS`` (default allocator settings) in a child: a real OOM,
  ``per_device_train_batch_size * gradient_accumulation_steps`` equals the
  global batch asked for, and ``train()`` runs 20 steps right after;
- the model, the RNG and ``trainer.optimizer`` are as before the search;
- the probes run at the longest sequence of the dataset (the worst case);
- the global batch split exactly (closed-form cases) and bad input refused;
- ``batch_finder/*`` on the run the Trainer's ``WandbCallback`` starts;
- two gloo ranks under ``torch.distributed.run`` agree on the smaller ceiling.

Run as a script (``python tests/test_finder_transformers.py OUT CAP_MB``, or
``ddp OUT`` under ``torch.distributed.run``) it is the child of the capped and
two-rank tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments  # noqa: E402

from wandb_batchsize.integrations._global_batch import split_global_batch  # noqa: E402
from wandb_batchsize.integrations.transformers import fit_batch_size  # noqa: E402
from wandb_batchsize.tracking.offline import read_run, scan_run  # noqa: E402

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
SEQ, VOCAB = 64, 500


class Sequences(torch.utils.data.Dataset):
    """``n`` seeded token sequences of 8 to 64 tokens (item 0 is short: the first batch is not
    the worst case)."""

    def __init__(self, n: int = 512) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        g = torch.Generator().manual_seed(i)
        length = 8 if i < 16 else int(torch.randint(8, SEQ + 1, (), generator=g))
        ids = torch.randint(0, VOCAB, (length,), generator=g)
        return {"input_ids": ids, "labels": ids.clone()}


def collate(items):
    """Pads to the longest item: input_ids 0, labels -100, attention_mask 0."""
    n, longest = len(items), max(len(x["input_ids"]) for x in items)
    ids = torch.zeros(n, longest, dtype=torch.long)
    labels = torch.full((n, longest), -100, dtype=torch.long)
    mask = torch.zeros(n, longest, dtype=torch.long)
    for i, x in enumerate(items):
        k = len(x["input_ids"])
        ids[i, :k], labels[i, :k], mask[i, :k] = x["input_ids"], x["labels"], 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


class Limited(GPT2LMHeadModel):
    """GPT-2 that runs out of memory above ``limit`` sequences (a budget for the split tests;
    the capped test's OOM is real) and records the input shapes it saw."""

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        limit = getattr(self, "limit", None)
        if limit is not None and input_ids.shape[0] > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.shapes.append(tuple(input_ids.shape))
        return super().forward(
            input_ids=input_ids, attention_mask=attention_mask, labels=labels, **kwargs
        )


def tiny_gpt2(limit: int | None = None) -> Limited:
    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=SEQ, vocab_size=VOCAB)
    model = Limited(config)
    model.limit, model.shapes = limit, []
    return model


def make_trainer(model, tmp_path, max_steps: int = 3, report_to: str = "none", **kwargs) -> Trainer:
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        max_steps=max_steps,
        report_to=report_to,
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        logging_steps=1,
        dataloader_num_workers=0,
        **kwargs,
    )
    return Trainer(model=model, args=args, train_dataset=Sequences(), data_collator=collate)


def read_back(run_dir: Path, wait: float = 30.0):
    """The offline run, once W&B's writer has put its records out (slow on a loaded machine)."""
    deadline = time.monotonic() + wait
    while scan_run(run_dir).problem and time.monotonic() < deadline:
        time.sleep(0.5)
    return read_run(run_dir)


def capped_child(out: Path, cap_mb: float) -> None:
    import resource

    torch.set_num_threads(1)
    model = tiny_gpt2()
    trainer = make_trainer(model, out.parent, max_steps=20)
    with open("/proc/self/status") as fh:
        vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize"))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (vm + int(cap_mb * 2**20), hard))
    report: dict = {}
    result = fit_batch_size(trainer, global_batch_size=128, verbose=False, log_to_wandb=False)
    model.shapes.clear()
    try:
        trainer.train()
        report["train_ok"] = True
    except Exception as exc:  # reported; the test fails on it
        report.update(train_ok=False, error=f"{type(exc).__name__}: {str(exc)[:300]}")
    report.update(
        global_step=trainer.state.global_step,
        per_device=trainer.args.per_device_train_batch_size,
        accumulation=trainer.args.gradient_accumulation_steps,
        found=result.batch_size,
        max_fitting=result.max_fitting,
        confirmed=result.confirmed,
        searched=result.searched_batch_size,
        step_downs=list(result.step_downs),
        ooms=result.oom_events,
        max_length=result.max_length,
        train_sizes=sorted({s[0] for s in model.shapes}),
    )
    out.write_text(json.dumps(report))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is a Linux feature")
@pytest.mark.timeout(240)
def test_the_split_trains_20_steps_right_after_a_real_oom(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(
        PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled"
    )
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, str(HERE), str(out), "96"],
        env=env,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=220,
    )
    assert out.exists(), proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["train_ok"] and report["global_step"] == 20, report
    assert report["ooms"] >= 1 and report["confirmed"], report  # the ceiling was reached
    assert report["max_length"] == SEQ, report  # probed at the longest sequence
    assert report["per_device"] * report["accumulation"] == 128, report
    assert report["per_device"] <= report["found"] <= 0.9 * report["max_fitting"], report
    assert report["train_sizes"] == [report["per_device"]], report


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
@pytest.mark.timeout(240)
def test_two_torchrun_ranks_agree_and_keep_the_global_batch(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.update(CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled")
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run(
        [*run, str(HERE), "ddp", str(tmp_path)],
        env=env,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=220,
    )
    ranks = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("rank*.json"))]
    assert len(ranks) == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    for r in ranks:
        # rank 1 fits 48, rank 0 fits 96: both take 48 -> 43 -> 40; 64 per rank -> 32 x 2
        assert r["world"] == 2 and r["max_fitting"] == 48 and r["found"] == 40, ranks
        assert (r["per_device"], r["accumulation"]) == (32, 2), ranks
        assert r["per_device"] * r["accumulation"] * r["world"] == 128
        assert r["global_step"] == 2, ranks


def test_the_search_leaves_model_rng_and_optimizer_as_they_were(tmp_path):
    model = tiny_gpt2(limit=70)
    trainer = make_trainer(model, tmp_path, max_steps=1, bf16=True)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state().clone()
    result = fit_batch_size(
        trainer, global_batch_size=256, verbose=False, tolerance=0, min_batch_size=16
    )
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(rng, torch.get_rng_state()) and trainer.optimizer is None
    # fits up to 70: 70 * 0.9 = 63 -> 56; 256 has no divisor in (32, 56]: 32 x 8
    assert result.max_fitting == 70 and result.batch_size == 56 and result.confirmed
    assert trainer.args.per_device_train_batch_size == 32
    assert trainer.args.gradient_accumulation_steps == 8
    # every probe ran the worst case: the dataset's longest sequence, not the first batch's 8
    assert result.max_length == SEQ and {s[1] for s in model.shapes} == {SEQ}
    model.shapes.clear()
    trainer.train()
    assert trainer.state.global_step == 1 and {s[0] for s in model.shapes} == {32}
    assert len(model.shapes) == 8  # 8 micro-batches in the step


def test_split_global_batch_is_exact():
    cases = {
        (1024, 4, 300): (256, 1),  # 256 per rank fits
        (1024, 1, 300): (256, 4),
        (1000, 1, 256): (250, 4),
        (96, 2, 40): (24, 2),
        (128, 2, 40): (32, 2),
        (7, 7, 1): (1, 1),
    }
    for (g, w, c), (per_device, accumulation) in cases.items():
        split = split_global_batch(g, w, c)
        assert (split.per_device, split.accumulation) == (per_device, accumulation), (g, w, c)
        assert split.per_device * split.accumulation * w == g
    prime = split_global_batch(1009 * 2, 2, 500)
    assert (prime.per_device, prime.accumulation) == (1, 1009) and "no divisor" in prime.note
    with pytest.raises(ValueError, match="smaller than the world size 4"):
        split_global_batch(3, 4, 100)
    with pytest.raises(ValueError, match="not a multiple of the world size 4.*use 8 or 12"):
        split_global_batch(10, 4, 100)
    with pytest.raises(ValueError, match="positive integer"):
        split_global_batch(2.5, 1, 100)


def test_bad_input_is_refused(tmp_path):
    trainer = make_trainer(tiny_gpt2(), tmp_path)
    with pytest.raises(TypeError, match="needs a transformers.Trainer"):
        fit_batch_size(object())
    with pytest.raises(TypeError, match="sets \\['step_fn'\\] itself"):
        fit_batch_size(trainer, step_fn=lambda m, b, o: None)
    with pytest.raises(TypeError, match="unknown find_batch_size option"):
        fit_batch_size(trainer, safety=0.5)
    with pytest.raises(ValueError, match="positive integer"):
        fit_batch_size(trainer, global_batch_size=0)
    trainer.train_dataset = None
    with pytest.raises(ValueError, match="needs the Trainer's train_dataset"):
        fit_batch_size(trainer)


def test_the_answer_lands_on_the_run_the_wandb_callback_starts(wandb_env, tmp_path):
    import wandb
    from conftest import run_dir_of

    from wandb_batchsize.tracking import keys

    model = tiny_gpt2(limit=50)
    trainer = make_trainer(model, tmp_path, max_steps=2, report_to="wandb")
    assert wandb.run is None  # the WandbCallback starts its run in train()
    result = fit_batch_size(
        trainer, global_batch_size=80, verbose=False, tolerance=0, min_batch_size=16
    )
    trainer.train()
    run = wandb.run
    run.finish()
    logged = read_back(run_dir_of(run))
    # 50 * 0.9 = 45 -> 40, which divides 80: 40 x 2
    assert result.batch_size == 40
    expected = {
        keys.BATCH_FINDER_OPTIMAL: 40,
        keys.BATCH_FINDER_MAX_FITTING: 50,
        keys.BATCH_FINDER_CONFIRMED: True,
        "batch_finder/per_device_batch_size": 40,
        "batch_finder/accumulation_steps": 2,
        "batch_finder/global_batch_size": 80,
    }
    assert {k: logged.summary.get(k) for k in expected} == expected
    assert logged.config["batch_size"] == logged.config["per_device_train_batch_size"] == 40
    assert logged.config["gradient_accumulation_steps"] == 2
    assert logged.history_of("train/loss")  # the Trainer's own logging went to the same run


def ddp_child(out: Path) -> None:
    """One of two torchrun ranks: rank 1 fits 48 sequences, rank 0 fits 96."""
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    model = tiny_gpt2(limit=(96, 48)[rank])
    trainer = make_trainer(model, out, max_steps=2)
    result = fit_batch_size(
        trainer,
        global_batch_size=128,
        verbose=False,
        log_to_wandb=False,
        tolerance=0,
        min_batch_size=16,
    )
    trainer.train()
    report = {
        "rank": rank,
        "world": trainer.args.world_size,
        "max_fitting": result.max_fitting,
        "found": result.batch_size,
        "per_device": trainer.args.per_device_train_batch_size,
        "accumulation": trainer.args.gradient_accumulation_steps,
        "global_step": trainer.state.global_step,
    }
    (out / f"rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    if sys.argv[1] == "ddp":
        ddp_child(Path(sys.argv[2]))
    else:
        capped_child(Path(sys.argv[1]), float(sys.argv[2]))
