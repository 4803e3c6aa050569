"""The built-in toy world and toy model: evalkit runs offline with no downloads.

`world` (coloured shapes on a grid, rendered to images), `language` (the words and sentences about them) and
`folders` (writing a toy data folder once, safely) sit at the bottom of the layers, beside the util package;
each benchmark's `toy.py` builds its toy set from them. `model` and `pretrain` are the tiny LLaVA that
`--model toy` loads, warmed up on the world (and on POPE's questions, the one edge to a task);
`alignment_data` writes the toy alignment study's training files; `judge` is the toy judge (model spec
`toy-judge`), a backend that rates answers on the HelpSteer attributes from the toy world's truth.
"""
