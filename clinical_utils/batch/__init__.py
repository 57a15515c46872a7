"""Running the notebooks: the batch (`reproduce`, also `python -m clinical_utils.batch`), its grid of per-seed
shards on Dask (`grid`) and the process settings the kernels run with (`environment`)."""
