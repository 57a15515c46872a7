"""Tables, figures and words from run records: what the notebooks and the summary show.

frames.py turns records into data frames; style.py gives every method one style (colours and markers from the
strategy registry); figures.py, images.py, tables.py and text.py (generated verdicts and findings) draw on
them. Every public name is re-exported here: `from clinical_utils import report; report.round_curves(frame)`.

    python -m clinical_utils.report results/quick    # the results page's tables, from the records
"""
from .frames import METRICS, REFINEMENT, class_label, load_records, per_class_frame, rounds_frame
from .style import (FROM_ZERO, HUE_ORDER, LABELS, MARGIN, MARKERS, METHODS_STYLE, PALETTE, SHARES, caption,
                    in_hue_order, merge_identical, seeds_of, seeds_text, strategy_style)
from .figures import (PAIRED_VALUES, budget_curves, paired_figure, per_class_curves, recall_plot, round_curves,
                      save_figure)
from .images import class_examples, corrected_images, picked_images
from .tables import (blind_rounds_table, collapse_table, detector_table, final_table, markdown_table, paired_view,
                     picks_table, readme_tables, refinement_table, run_overview, save_csv)
from .text import findings, headline, interval_text, refinement_findings, refinement_verdict, smi_verdict

__all__ = ["FROM_ZERO", "HUE_ORDER", "LABELS", "MARGIN", "MARKERS", "METHODS_STYLE", "METRICS", "PAIRED_VALUES",
           "PALETTE", "REFINEMENT", "SHARES", "blind_rounds_table", "budget_curves", "caption", "class_examples",
           "class_label", "collapse_table", "corrected_images", "detector_table", "final_table", "findings",
           "headline", "in_hue_order", "interval_text", "load_records", "markdown_table", "merge_identical",
           "paired_figure", "paired_view", "per_class_curves", "per_class_frame", "picked_images", "picks_table",
           "readme_tables", "recall_plot", "refinement_findings", "refinement_table", "refinement_verdict",
           "round_curves", "rounds_frame", "run_overview", "save_csv", "save_figure", "seeds_of", "seeds_text",
           "smi_verdict", "strategy_style"]
