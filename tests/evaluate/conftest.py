"""A tiny 3-label task that a tiny model learns in seconds, and one tuned run of it shared by the eval tests.

Each ticket carries one fixed trigger word (refund -> billing, order -> shipping, password -> account)
among filler words; the answer is `category: <label>`. The randomly initialised tiny base model scores
chance at best zero-shot and few-shot (answers held to the labels); 300 full fine-tuning steps learn it.
"""

import pytest
from labeltask import run_config, write_rows

import tunesmith


@pytest.fixture(scope="session")
def label_data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("label-data")
    return write_rows(tmp / "train.jsonl", 48, seed=0), write_rows(tmp / "test.jsonl", 24, seed=1)


@pytest.fixture(scope="session")
def tuned_run(tmp_path_factory, tiny_llama_dir, label_data):
    """A finished run whose end-of-training evaluation wrote eval.json, predictions.jsonl and report.html."""
    out = tmp_path_factory.mktemp("tuned") / "run"
    return tunesmith.train(run_config(tiny_llama_dir, *label_data, out), show_progress=False)
