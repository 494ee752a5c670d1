"""One process of a torchrun job in the tests: `tunesmith <args>`, then whether its process group is still up.

A rank that leaves with gloo's process group alive can abort in interpreter teardown (SIGABRT, now and then),
which fails the whole job: the group must be ended by the time the command returns."""

import sys

import torch.distributed as dist

from tunesmith.cli import main

code = main(sys.argv[1:])
print(f"process group still up after the command: {dist.is_initialized()}", file=sys.stderr)
sys.exit(code)
