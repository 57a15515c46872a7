"""What a reader of the committed notebooks sees: the project's kernel, no stderr blocks, no test markers, tables
as tables, and, where a notebook was run, a closing 'What this shows' written from its numbers."""
import re
from pathlib import Path

import nbformat
import pytest

from clinical_utils.batch.reproduce import NOTEBOOKS as EXPERIMENT_NOTEBOOKS

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_reads_well(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.kernelspec.name == "clinical-utils"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not [c.source for c in code if "NBVAL" in c.source.upper()]  # nbval markers are cell tags
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("name") == "stderr"], "progress bars or warnings in saved outputs"
    texts = [o.get("data", {}).get("text/plain", "") for o in outputs] + [o.get("text", "") for o in outputs]
    assert not [t for t in texts if "dtype:" in t], "a Series printed as text where a table belongs"
    bars = [t for t in texts if re.search(r"\d+%\|.*\| \d+/\d+ \[", t)]  # tqdm's '  0%|    | 0/130 ['
    assert not bars, f"progress bars saved as outputs: {bars}"
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert not [o for o in widgets if o["data"].get("text/plain", "").startswith("<")], \
        "a widget saved as its Python repr (<... object at 0x...>): save a picture of it instead"
    if outputs and path.stem in EXPERIMENT_NOTEBOOKS:
        closing = code[-1].outputs[0]["data"]["text/markdown"]
        assert closing.startswith("**What this shows**")
