"""Helpers several test modules share (data builders, run writers), imported as `support.<topic>`:
tests/ is on pytest's `pythonpath`, so a test anywhere in the tree imports them the same way."""
