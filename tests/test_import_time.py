"""What starting hf-relrep imports, measured in fresh processes (no timing: `benchmarks/` measures time).

- ``import hf_relrep`` registers the model types (so it imports torch and transformers) and adds none of the heavy
  packages: they load on first use of what needs them. transformers itself imports PIL and scipy when they are
  installed (``import transformers``, `transformers.PreTrainedModel`); hf-relrep adds nothing to that.
- ``hf-relrep --help`` and ``hf-relrep SUBCOMMAND --help`` import neither torch nor transformers.
- The pytest plugin, loaded in every pytest session of the environment, imports nothing of hf-relrep.
"""

import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest


HEAVY = ("matplotlib", "scipy", "PIL", "pandas", "datasets", "sklearn", "numba", "evaluate", "peft", "gudhi")
SUBCOMMANDS = ("stitch", "push", "evaluate", "reproduce", "reproduce-vision", "study")
SAVED = Path(__file__).resolve().parent / "fixtures" / "saved_by_0.1.0"


def _run(code: str) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON object on its last line."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _loaded(names: tuple[str, ...]) -> str:
    """Code for the subset of `names` (top-level packages) imported so far."""
    return f"sorted(n for n in {names!r} if n in sys.modules)"


def test_import_hf_relrep_adds_no_heavy_package_and_registers_the_model_types():
    code = f"""
import json, sys
import torch, transformers
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, PreTrainedConfig, PreTrainedModel
by_transformers = {_loaded(HEAVY)}
import hf_relrep
after = {_loaded(HEAVY)}
model = AutoModelForSequenceClassification.from_pretrained({str(SAVED / "relative")!r})
translated = AutoModelForSequenceClassification.from_pretrained({str(SAVED / "translated")!r})
print(json.dumps({{"by_transformers": by_transformers, "after": after, "after_load": {_loaded(HEAVY)},
                  "classes": [type(model).__name__, type(translated).__name__]}}))
"""
    seen = _run(code)
    added = sorted(set(seen["after"]) - set(seen["by_transformers"]))
    assert not added, f"import hf_relrep imports {added}"
    assert not {"matplotlib", "pandas", "datasets", "sklearn", "numba"} & set(seen["after"])
    assert seen["classes"] == ["RelativeModelForSequenceClassification", "TranslatedModelForSequenceClassification"]


def test_help_imports_neither_torch_nor_transformers():
    code = f"""
import contextlib, io, json, sys
import hf_relrep_launcher
codes = []
for argv in [["--help"], ["--version"], *([command, "--help"] for command in {SUBCOMMANDS!r})]:
    sys.argv = ["hf-relrep", *argv]
    with contextlib.redirect_stdout(io.StringIO()):
        codes.append(hf_relrep_launcher.main())
print(json.dumps({{"codes": codes, "loaded": {_loaded(("torch", "transformers", "huggingface_hub", *HEAVY))}}}))
"""
    seen = _run(code)
    assert seen["codes"] == [0] * (2 + len(SUBCOMMANDS))
    assert seen["loaded"] == []


def test_the_console_script_is_the_launcher():
    (script,) = entry_points(group="console_scripts", name="hf-relrep")
    assert script.value == "hf_relrep_launcher:main"
    path = Path(sys.executable).parent / "hf-relrep"
    if not path.is_file():
        pytest.skip("the hf-relrep console script is not installed next to this interpreter")
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(path), "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "usage: hf-relrep" in result.stdout
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert not imported & {"torch", "transformers"}, "hf-relrep --help imported torch or transformers"


def test_a_command_registers_the_model_types_when_it_imports_the_models():
    code = """
import json, sys
import hf_relrep_launcher
import hf_relrep
before = "torch" in sys.modules
import hf_relrep.stitching
from transformers import CONFIG_MAPPING
print(json.dumps({"torch_before": before, "types": sorted(t for t in CONFIG_MAPPING if t.startswith("hf-relrep"))}))
"""
    seen = _run(code)
    assert seen == {"torch_before": False, "types": ["hf-relrep", "hf-relrep-translated"]}


def test_the_pytest_plugin_imports_nothing_of_hf_relrep():
    (plugin,) = entry_points(group="pytest11", name="hf_relrep")
    assert plugin.value == "_hf_relrep_pytestplugin"
    code = f"""
import json, sys
import _hf_relrep_pytestplugin
print(json.dumps({{"ours": sorted(n for n in sys.modules if n.startswith("hf_relrep")),
                  "loaded": {_loaded(("torch", "transformers", "huggingface_hub", *HEAVY))}}}))
"""
    assert _run(code) == {"ours": [], "loaded": []}


def test_the_plugin_under_its_package_name_has_the_same_fixtures():
    import _hf_relrep_pytestplugin as entry
    from hf_relrep.testing import plugin

    assert plugin.local_hub is entry.local_hub
    assert plugin.local_hub_environment is entry.local_hub_environment
