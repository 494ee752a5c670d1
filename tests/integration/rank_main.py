"""One process of a torchrun job in the tests: `tunesmith <args>`, then whether its process group is still up, then
leaving as `python -m tunesmith.cli` does (`cli.leave`).

Training must end the group on every rank once no collective is left (`distributed.end`), so a rank never leaves
with a group its peers still talk to."""

import sys

import torch.distributed as dist

from tunesmith.cli import leave, main

code = main(sys.argv[1:])
print(f"process group still up after the command: {dist.is_initialized()}", file=sys.stderr)
leave(code)  # as `python -m tunesmith.cli` leaves
