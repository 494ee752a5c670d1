"""tunesmith: turn a general pre-trained language model into a specialist.

import tunesmith
result = tunesmith.train("examples/support/config.yaml", ["train.max_steps=20"])
print(result.run_dir, result.before, result.after)
"""

from tunesmith.config import Config, load_config
from tunesmith.errors import ConfigError, DataError, ModelError, RunError, TunesmithError

__version__ = "0.1.0"


def train(config, overrides=None, *, resume=None, show_progress=True):
    """Fine-tune as `config` (a YAML path, dict or `Config`) says; return a `RunResult`. See `tunesmith.pipeline`."""
    from tunesmith.pipeline import train as _train

    return _train(config, overrides, resume=resume, show_progress=show_progress)


__all__ = ["Config", "ConfigError", "DataError", "ModelError", "RunError", "TunesmithError", "load_config", "train"]
