"""Answers produced elsewhere: `evalkit import` of official per-item files (`importer`) and of lmms-eval's
per-sample logs (`lmms_eval`, with the per-task converters in `lmms_eval_tasks`)."""
