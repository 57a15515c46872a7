"""python -m clinical_utils.report [RESULTS_DIR]: the results page's tables from the records (default
results/quick)."""
import sys

from .tables import readme_tables

print(readme_tables(sys.argv[1] if len(sys.argv) > 1 else "results/quick"))
