"""Benchmark tasks, installed as `evalkit.tasks`: one package per benchmark (`<bench>/__init__.py` the Task
classes, `protocol`, `data`, `toy`, `importing`, `lmms_eval`, `assets/`; see the README's "Adding a
benchmark"), and `nlp`, the one discovery of NLTK / WordNet / spaCy that AMBER and Object HalBench share."""
