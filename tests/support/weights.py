"""Exact weight comparison for the toy model tests."""

import hashlib


def weights_hash(model) -> str:
    """sha256 over a model's state dict (names and bytes), to compare weights exactly."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().numpy().tobytes())
    return h.hexdigest()
