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

#: Never imported by the clustering math, directly or through another module.
LLM_LAYER = ("kec.backends", "kec.prompts", "kec.llm.builder")
#: Model libraries: imported only by the encoders, and only when a model is made.
MODEL_LIBS = ("torch", "open_clip", "sentence_transformers", "transformers")
CLUSTER_DIR = Path(kec.cluster.__file__).parent


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
    assert _under(modules, ("kec",)) == ["kec", "kec._lazy"]  # the lazy-export helper only
    assert not _under(modules, ("numpy", "scipy", "sklearn", *MODEL_LIBS))


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


@pytest.mark.parametrize("path", sorted(CLUSTER_DIR.glob("*.py")), ids=lambda p: p.name)
def test_no_cluster_module_imports_the_llm_layer_even_lazily(path):
    tree = ast.parse(path.read_text("utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        bad = _under(set(targets), LLM_LAYER)
        assert not bad, f"{path.name}:{node.lineno} imports {bad}"


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

    for package in (kec, kec.cluster):
        assert sorted(set(package.__all__) - {"__version__"}) == sorted(package._LAZY)
        for name in package.__all__:
            assert getattr(package, name) is not None
        with pytest.raises(AttributeError, match="no attribute 'nope'"):
            package.nope  # noqa: B018
        assert set(package.__all__) <= set(dir(package))


#: What the fast commands must not load (docs/architecture.md, rule 3).
SLOW_TO_IMPORT = ("scipy", "sklearn", "kec.backends", "kec.llm.builder", "openai",
                  "langchain_core", "llama_cpp", *MODEL_LIBS)


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
