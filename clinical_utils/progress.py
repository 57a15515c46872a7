"""The progress bar of a batch of runs."""
from __future__ import annotations

import os

from tqdm.auto import tqdm


def progress_bar(items, desc: str, show: bool | None):
    """tqdm.auto over `items` (one widget line in Jupyter, one line on a terminal). show=None: shown unless
    $TQDM_DISABLE is set, as the batch sets it, so that saved notebooks carry no progress output (read here:
    tqdm's notebook bar ignores the variable and was saved as '0/130')."""
    hidden = os.environ.get("TQDM_DISABLE", "") not in ("", "0") if show is None else not show
    return tqdm(items, desc=desc, unit="run", disable=hidden)
