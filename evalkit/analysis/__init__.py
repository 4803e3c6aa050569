"""Reading finished run folders and presenting them; never loads a model or a judge: run folders
(`runs`), paired comparison and the regression gate (`compare`, `junit`), leaderboards (`leaderboard`),
the alignment-tax table and its renderings (`tax`, `tax_render`) and the terminal / JSON tables every
command prints (`report`)."""
