"""Run folders and exports get the permissions the user's umask asks for, even from writers (safetensors)
that create their files 0600."""

from __future__ import annotations

import os
import stat

import pytest
import torch
from safetensors.torch import save_file

from tunesmith.runfolder import atomic_folder


@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_atomic_folders_follow_the_umask(tmp_path, mask, file_mode, dir_mode):
    def write(tmp):
        save_file({"w": torch.zeros(2)}, str(tmp / "weights.safetensors"))
        fd = os.open(tmp / "private.txt", os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "x.json").write_text("{}")

    old = os.umask(mask)
    try:
        out = atomic_folder(tmp_path / "adapter", write)
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [out, *out.rglob("*")]}
    assert modes == {
        "adapter": dir_mode,
        "weights.safetensors": file_mode,
        "private.txt": file_mode,
        "sub": dir_mode,
        "x.json": file_mode,
    }
