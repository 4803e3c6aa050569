"""The HTTP pieces of `evalkit.models.openai_client` that hold no connection state: the endpoint URLs
built from `--base-url` (user info moved to an Authorization header, the query kept), the proxy from the
environment, the Retry-After header and the one-line message of an error body."""

from __future__ import annotations

import base64
import email.utils
import json
import time
import urllib.request

from yarl import URL


def endpoint(base: URL, route: str) -> URL:
    """`base` + `route`, without user info, keeping the base URL's query (e.g. `?api-version=`)."""
    out = base.with_user(None).with_path(base.raw_path.rstrip("/") + route, encoded=True)
    return URL(f"{out}?{base.raw_query_string}", encoded=True) if base.raw_query_string else out


def env_proxy(url: URL) -> URL | None:
    """The proxy for `url` from HTTP(S)_PROXY / ALL_PROXY / NO_PROXY, looked up once per session
    (aiohttp's own `trust_env` does it, and a netrc lookup, in threads on every request). User info
    in the proxy URL is sent to the proxy as Proxy-Authorization."""
    if url.host and urllib.request.proxy_bypass(url.host):
        return None
    proxies = urllib.request.getproxies()
    raw = proxies.get(url.scheme) or proxies.get("all")
    return URL(raw if "://" in raw else f"http://{raw}") if raw else None


def basic_auth(url: URL) -> str:
    """An HTTP Basic authorization value from the user info of `url`."""
    userpass = f"{url.user or ''}:{url.password or ''}".encode()
    return "Basic " + base64.b64encode(userpass).decode("ascii")


def retry_after_s(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (a number of seconds or an HTTP date), None if absent."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def short_body(text: str, limit: int = 300) -> str:
    """The error message from an OpenAI-style error body, else the body text, on one short line."""
    try:
        err = json.loads(text).get("error")
        if isinstance(err, dict) and err.get("message"):
            text = str(err["message"])
        elif isinstance(err, str):
            text = err
    except (ValueError, AttributeError):
        pass
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")
