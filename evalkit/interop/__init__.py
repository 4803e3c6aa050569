"""Answers produced elsewhere, and answers sent elsewhere: `evalkit import` of official per-item files
(`importer`) and of lmms-eval's per-sample logs (`lmms_eval`: the generic reader; each task converts its
own records in `tasks/<bench>/lmms_eval.py`), and `evalkit export` of a run in a benchmark's submission
format (`exporting`)."""
