"""`evalkit annotate`: the first study's data pipeline (Li et al. 2024, training.md §1a).

The policy samples K answers per prompt (`sampling`), a judge rates each on the five HelpSteer attributes
with `rating.ATTRIBUTE_PROMPT` (`rating`), every sample and its rating is kept in a resumable folder
(`store`), and the DPO, rejection-sampling and SteerLM training files are built from the ratings by the
study's rules (`build`). `pipeline.annotate` runs it all; `records` reads the prompts.
"""

from evalkit.annotation.rating import ATTRIBUTE_PROMPT, PARSER_VERSION, parse_ratings, quality, render

__all__ = ["ATTRIBUTE_PROMPT", "PARSER_VERSION", "parse_ratings", "quality", "render"]
