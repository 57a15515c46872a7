"""python -m clinical_utils.batch: run the notebook batch (`reproduce.main`; --help lists the options)."""
import sys

from .reproduce import main

sys.exit(main())
