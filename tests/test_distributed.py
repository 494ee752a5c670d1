"""The process group's lifetime: `distributed.end` ends it on every rank together, and a group started inside
`distributed.ended_after` is ended when the block finishes normally (the torchrun tests check it end to end)."""

import pytest
import torch.distributed as dist

from tunesmith.training import distributed


def start_group(tmp_path):
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)


def test_a_group_started_inside_is_ended_on_a_normal_finish(tmp_path):
    with distributed.ended_after():
        start_group(tmp_path)
        assert dist.is_initialized()
    assert not dist.is_initialized()


def test_a_group_is_left_alone_after_an_error(tmp_path):
    """After an error another rank may still be in a collective: ending the group then can hang it."""
    try:
        with pytest.raises(RuntimeError), distributed.ended_after():
            start_group(tmp_path)
            raise RuntimeError("a step failed")
        assert dist.is_initialized()
    finally:
        dist.destroy_process_group()


def test_a_group_started_before_the_block_is_kept(tmp_path):
    start_group(tmp_path)
    try:
        with distributed.ended_after():
            pass
        assert dist.is_initialized()
    finally:
        dist.destroy_process_group()


def test_end_ends_the_group_and_is_nothing_in_a_single_process(tmp_path):
    distributed.end(distributed.DistInfo())  # no group, one process: nothing to do
    start_group(tmp_path)
    try:
        distributed.end(distributed.DistInfo(world_size=1))  # a lone process never ended a group it did not use
        assert dist.is_initialized()
        distributed.end(distributed.DistInfo(rank=0, world_size=2))  # (a one-rank group stands in for the job)
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
