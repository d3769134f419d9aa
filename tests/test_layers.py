"""Import layers (docs/architecture.md): what importing a layer may pull in.

Each check runs in a fresh interpreter, since this test session has imported everything.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import kec.cluster

#: Never imported by the clustering math or the knowledge documents, directly or through
#: another module: kec.llm (the builder) and what it drives (backends, prompts).
LLM_LAYER = ("kec.llm", "kec.backends", "kec.prompts")
#: The LLM client libraries the backends wrap.
LLM_LIBS = ("llama_cpp", "openai", "langchain", "langchain_core", "langchain_openai", "vllm",
            "ray")
#: Model libraries: imported only by the encoders, and only when a model is made.
MODEL_LIBS = ("torch", "open_clip", "sentence_transformers", "transformers")
CLUSTER_DIR = Path(kec.cluster.__file__).parent
KNOWLEDGE_DIR = CLUSTER_DIR.parent / "knowledge"


def _modules_after(code: str) -> set[str]:
    """``sys.modules`` of a fresh interpreter after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=240, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _under(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


def test_import_kec_loads_nothing_heavy():
    modules = _modules_after("import kec; kec.__version__")
    # the lazy-export helper and the version only
    assert _under(modules, ("kec",)) == ["kec", "kec._lazy", "kec._version"]
    assert not _under(modules, ("numpy", "scipy", "sklearn", *MODEL_LIBS))


def test_import_kec_llm_loads_no_backend():
    modules = _modules_after("import kec.llm; dir(kec.llm)")
    assert _under(modules, ("kec",)) == ["kec", "kec._lazy", "kec._version", "kec.llm"]


def test_the_method_registry_is_free_to_read():
    modules = _modules_after(
        "import kec.cluster.registry as r; [r.method_spec(n) for n in r.method_names()]")
    assert not _under(modules, ("numpy", "scipy", "sklearn", *MODEL_LIBS))


def test_clustering_layer_imports_no_llm_layer_and_no_model_library():
    names = sorted(m.name for m in pkgutil.iter_modules([str(CLUSTER_DIR)]))
    assert {"methods", "estimators", "scaffold", "registry"} <= set(names)
    code = "import kec.cluster\n" + "".join(f"import kec.cluster.{n}\n" for n in names)
    code += "from kec import KEC, CAE, TAC, KECCAE, SphericalKMeans, KMeansBaseline\n"
    code += "from kec import load_knowledge, create_text_encoder, load_features\n"
    modules = _modules_after(code)
    assert "kec.cluster.methods" in modules, "the probe imported nothing"
    assert not _under(modules, LLM_LAYER)
    assert not _under(modules, MODEL_LIBS)
    assert not _under(modules, ("kec.encoders",))


def _imports(path: Path) -> list[tuple[int, list[str]]]:
    """``(line, modules)`` of every import statement of ``path``, in functions too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.append((node.lineno, [a.name for a in node.names]))
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno,
                          [node.module] + [f"{node.module}.{a.name}" for a in node.names]))
    return found


@pytest.mark.parametrize("path", sorted(CLUSTER_DIR.glob("*.py")) + sorted(
    KNOWLEDGE_DIR.glob("*.py")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_cluster_or_knowledge_module_imports_the_llm_layer_even_lazily(path):
    for line, targets in _imports(path):
        bad = _under(set(targets), LLM_LAYER + LLM_LIBS)
        assert not bad, f"{path.parent.name}/{path.name}:{line} imports {bad}"


#: A fit in a fresh interpreter: random features, a hand-written document, a toy text
#: encoder (a text's vector comes from its SHA-256, as tests/cluster/helpers.HashEncoder).
FIT = """
import hashlib
import numpy as np
import kec

class Enc:
    dim = 16
    def encode(self, texts):
        rows = [np.random.default_rng(int.from_bytes(hashlib.sha256(t.encode()).digest()[:8],
                                                     "little")).standard_normal(self.dim)
                for t in texts]
        v = np.stack(rows)
        return v / np.linalg.norm(v, axis=1, keepdims=True)
    def describe(self):
        return {"kind": "test-hash", "model": "hash", "pretrained": None, "dim": self.dim}

doc = kec.make_knowledge(
    {"cat": ["striped fur", "pointed ears"], "dog": ["floppy ears", "wagging tail"],
     "car": ["four wheels", "metal body"]},
    pairs={("cat", "dog"): ["slit pupils", "retractable claws"]})
X = np.random.default_rng(0).standard_normal((30, 16)).astype("float32")
model = kec.KEC(3, random_state=0, text_encoder=Enc()).fit(X, knowledge=doc)
assert model.labels_.shape == (30,)
"""


def test_fit_with_handwritten_knowledge_loads_no_llm_layer():
    """What ``fit`` loads at run time (lint, the document, the text step), not only what
    importing the estimators loads: no LLM layer, no LLM client, no model library."""
    modules = _modules_after(FIT)
    assert {"kec.cluster.methods", "kec.knowledge.lint", "kec.knowledge.handwritten",
            "kec.knowledge.textcheck"} <= modules, "the fit ran less than it should"
    assert not _under(modules, LLM_LAYER), _under(modules, LLM_LAYER)
    assert not _under(modules, LLM_LIBS), _under(modules, LLM_LIBS)
    assert not _under(modules, (*MODEL_LIBS, "kec.encoders")), _under(modules, MODEL_LIBS)


def test_knowledge_features_is_the_function_and_its_module_stays_importable():
    from kec.cluster import knowledge_features
    from kec.cluster.knowledge_features import KnowledgeFeatures

    assert callable(knowledge_features) and knowledge_features.__name__ == "knowledge_features"
    assert kec.cluster.knowledge_features is knowledge_features
    assert KnowledgeFeatures.__module__ == "kec.cluster.knowledge_features"
    assert sys.modules["kec.cluster.knowledge_features"].knowledge_features is knowledge_features
    # also when the submodule was imported first (the import system then binds the module
    # to the package attribute of the same name)
    code = ("import kec.cluster.methods\nfrom kec.cluster import knowledge_features as f\n"
            "assert callable(f) and f.__name__ == 'knowledge_features', f")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=240)


def test_lazy_exports_are_complete():
    import kec
    import kec.knowledge
    import kec.llm

    for package in (kec, kec.cluster, kec.knowledge, kec.llm):
        assert sorted(set(package.__all__) - {"__version__"}) == sorted(package._LAZY)
        for name in package.__all__:
            assert getattr(package, name) is not None
        with pytest.raises(AttributeError, match="no attribute 'nope'"):
            package.nope  # noqa: B018
        assert set(package.__all__) <= set(dir(package))


#: What the fast commands must not load (docs/architecture.md, rule 3).
SLOW_TO_IMPORT = ("scipy", "sklearn", *LLM_LAYER, *LLM_LIBS, *MODEL_LIBS)


@pytest.mark.parametrize("argv", [["--help"], ["knowledge", "validate", "K"],
                                  ["knowledge", "show", "K"]], ids=" ".join)
def test_fast_commands_import_no_heavy_layer(argv, tmp_path):
    from kec.knowledge.document import save_knowledge
    from tests.knowledge.docs import make_doc

    save_knowledge(make_doc(), tmp_path / "K")
    args = [str(tmp_path / "K") if a == "K" else a for a in argv]
    modules = _modules_after(
        "import contextlib, io\nfrom kec.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    try:\n        main({args!r})\n    except SystemExit:\n        pass\n")
    assert "kec.cli.main" in modules
    assert not _under(modules, SLOW_TO_IMPORT)
