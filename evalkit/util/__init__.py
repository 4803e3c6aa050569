"""The lowest layer, used by every other: errors (the exit-1 failure class and the one-line messages for OS
and SQLite errors), datafiles (reading and checking data files; what identifies a run's data), images
(loading an image the same way for every backend), progress (progress bars) and environment (cache folders,
the software a run used). It imports nothing of evalkit but `evalkit.types`."""
