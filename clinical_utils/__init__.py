"""clinical_utils: targeted active learning and active label refinement on imbalanced MedMNIST images.

The layout, lowest first: shared foundations (`params`, `records`, `progress`); `data`; `training`; `selection`
(every strategy, in one registry); `stats` (paired differences over seeds); the two papers, `active` (CLINICAL)
and `refinement` (active label refinement); `experiments` (the one registry of both papers' experiments and
parameters); `labeling` (your own images); `batch` (the notebook batch and its grid) and `report` (frames,
figures, tables, words). A module imports only from its own room or a lower one.

Modules that moved into these rooms still import under their old names (`clinical_utils.loop`, ...), with a
DeprecationWarning naming the new one (`MOVED`).
"""
import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__version__ = "0.1.0"

# old module -> where it lives now
MOVED = {
    "clinical_utils.models": "clinical_utils.training.models",
    "clinical_utils.train": "clinical_utils.training.train",
    "clinical_utils.representation": "clinical_utils.training.representation",
    "clinical_utils.loop": "clinical_utils.active.loop",
    "clinical_utils.noise": "clinical_utils.refinement.noise",
    "clinical_utils.noisy": "clinical_utils.refinement.coteaching",
    "clinical_utils.confident": "clinical_utils.refinement.confident",
    "clinical_utils.refine": "clinical_utils.refinement.refine",
    "clinical_utils.noisy_experiments": "clinical_utils.experiments",
    "clinical_utils.label_widget": "clinical_utils.labeling.widget",
    "clinical_utils.demo": "clinical_utils.labeling.demo",
    "clinical_utils.reproduce": "clinical_utils.batch.reproduce",
    "clinical_utils.grid": "clinical_utils.batch.grid",
    "clinical_utils.environment": "clinical_utils.batch.environment",
}
# the old module names that were commands -> the command now
COMMANDS = {"clinical_utils.reproduce": "clinical_utils.batch", "clinical_utils.environment":
            "clinical_utils.batch.environment", "clinical_utils.demo": "clinical_utils.labeling.demo"}


class _Moved(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module name as the module that replaced it (the same object, so patching either patches
    both)."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def exec_module(self, module):
        name = module.__spec__.name
        warnings.warn(f"{name} moved to {MOVED[name]}; import it from there", DeprecationWarning, stacklevel=2)
        sys.modules[name] = importlib.import_module(MOVED[name])  # the import system returns what is here

    def get_code(self, name):  # python -m <old name>: say what runs now
        command = COMMANDS.get(name)
        raise ImportError(f"{name} moved to {MOVED[name]}" + (f": run python -m {command}" if command else ""))


if not any(isinstance(finder, _Moved) for finder in sys.meta_path):
    sys.meta_path.append(_Moved())
