"""How generation decodes on a CPU (`eval.precision`, `--precision`): a setting held for a block, apart from the
model code so that a command can enter it without loading torch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

PRECISIONS = ("float32", "model")  # eval.precision / --precision: how generation decodes on a CPU
_precision = ["float32"]


@contextmanager
def decoding_in(precision: str | None) -> Iterator[None]:
    """Inside the block, generation on a CPU decodes in `precision` (None: as outside it): `float32` (the default:
    answers that do not depend on the batch, as the fp32 export gives) or `model`, the weights' own dtype (bf16:
    faster where the CPU has bf16 units, but an answer may change with its batch; docs/eval.md)."""
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    _precision.append(precision or _precision[-1])
    try:
        yield
    finally:
        _precision.pop()


def decoding_precision() -> str:
    """The precision the innermost `decoding_in` block set (`float32` outside any)."""
    return _precision[-1]
