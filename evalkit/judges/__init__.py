"""LLM judges and what surrounds them: the judge itself (`judge`: backend, prompt, parser version and
fingerprint), its SQLite answer cache (`cache`), the run's judge flags and cost estimate (`settings`), the
judge phase of a run (`judging`), model prices (`pricing`), the up-front endpoint probe (`endpoints`) and
the detector of answers that address the judge (`injection`)."""
