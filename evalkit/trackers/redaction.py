"""What a tracker receives is free of secrets: the values of the environment's secret variables (API keys,
tokens, passwords: by their names, and the variables a config names in a `*api_key_env` setting) become
"***", and a value that is a URL loses its user info, query and fragment (`evalkit.models.base.public_url`,
the form in which evalkit writes every endpoint). run.json and train_config.json hold no secret already;
this is the second guard, for what a tracker uploads."""

from __future__ import annotations

import os
import re
from typing import Any

from evalkit.models.base import public_url

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")
MIN_SECRET = 6  # shorter values ("1", "true") would blank out ordinary text


def key_env_names(value: Any) -> set[str]:
    """The variable names held by `*api_key_env` settings anywhere in `value`."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if str(k).endswith("api_key_env") and isinstance(v, str):
                found.add(v)
            found |= key_env_names(v)
    elif isinstance(value, list | tuple):
        for v in value:
            found |= key_env_names(v)
    return found


def secret_values(extra_names: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """The environment's secret values, longest first (so a key that contains another is replaced whole)."""
    values = {
        v
        for k, v in os.environ.items()
        if (SECRET_NAME.search(k) or k in extra_names) and len(v) >= MIN_SECRET
    }
    return sorted(values, key=len, reverse=True)


def scrub_text(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    if _URL.match(text) and ("@" in text.split("://", 1)[1].split("/", 1)[0] or re.search(r"[?#]", text)):
        text = public_url(text)  # user info, a query or a fragment may hold credentials
    return text


def scrub(value: Any, secrets: list[str] | None = None) -> Any:
    """`value` (JSON-like: dicts, lists, strings, numbers) with every secret removed."""
    if secrets is None:
        secrets = secret_values(key_env_names(value))
    if isinstance(value, str):
        return scrub_text(value, secrets)
    if isinstance(value, dict):
        return {str(k): scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, secrets) for v in value]
    return value


def holds_secret(texts: list[str]) -> bool:
    """Whether any of `texts` (a command line) holds a secret or a URL with credentials."""
    secrets = secret_values()
    return any(scrub_text(t, secrets) != t for t in texts)
