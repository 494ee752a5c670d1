import os
import sys
from pathlib import Path

# The CPU suite runs on the CPU on every machine (`model.device: auto` would pick a GPU where there is one,
# and its tests compare CPU tensors); `pytest -m gpu` runs the GPU tests with the GPUs visible. Set before
# torch or transformers can initialise CUDA.
GPU_RUN = any("gpu" in arg for arg in sys.argv[1:])
if not GPU_RUN:
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

import pytest  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(int(os.environ.get("TUNESMITH_TEST_THREADS", "1")))

import tiny  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def shared_model_cache(tmp_path_factory):
    """One cache of converted models for the whole session (the bundled GGUF is converted once, ~20 s, rather than
    by every CLI test): `$TUNESMITH_CACHE` where it is set, else a session folder. Tests that look at the
    conversion itself give theirs a folder of its own."""
    if not os.environ.get("TUNESMITH_CACHE"):
        os.environ["TUNESMITH_CACHE"] = str(tmp_path_factory.mktemp("model-cache"))
    yield


@pytest.fixture(scope="session")
def chatml_tok():
    return tiny.chatml_tokenizer()


@pytest.fixture(scope="session")
def base_tok():
    return tiny.base_tokenizer()


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    return tiny.save_model_folder(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory):
    return tiny.save_model_folder(tmp_path_factory.mktemp("tiny-gpt2"), "gpt2")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU" + ("" if GPU_RUN else ": run `pytest -m gpu` on a GPU machine"))
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
