"""Runs on the Hugging Face hub: `push` publishes a run folder as a dataset repository (`dataset` builds
its files), `resolve` reads one back as a run through the hub cache."""
