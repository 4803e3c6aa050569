"""The code microsoft/Phi-3-mini-4k-instruct ships beside its weights (configuration_phi3.py,
modeling_phi3.py, named by its config.json's auto_map): here transformers' own Phi-3 classes under the
shipped module names, so that --trust-remote-code runs code from the checkpoint folder."""
