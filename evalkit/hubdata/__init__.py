"""Benchmark and training data from the Hugging Face hub: a task's (or training set's) declared source
(`source.HubSource`), fetching and locating it in the standard Hugging Face cache at a pinned revision,
checking the cached files against their blob names (`cache`), and reading parquet files with embedded
images (`parquet`).

Files are fetched file by file through `huggingface_hub` (never through `datasets` loading scripts, which
`datasets` ≥ 4 no longer runs). With `HF_HUB_OFFLINE=1` nothing touches the network: the cache must hold
the files (`evalkit data fetch TASK` fills it). Files no hub copy holds are fetched from their official
release with a pinned sha256 (`official`). Sits in the util layer: it knows no task.
"""
