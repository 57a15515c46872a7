"""Active label refinement (the second paper): simulated label noise (`noise`), phase 1's detectors of wrong
labels (Co-teaching and VOG in `coteaching`, cleanlab's confident learning in `confident`), phase 2's relabeling
rounds (`refine`) and running a configured experiment (`run`)."""
