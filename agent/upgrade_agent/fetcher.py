"""How the agent's TUF client fetches signed metadata and targets: through the
proxy the environment names (`http_proxy`, `https_proxy`, `all_proxy`,
`no_proxy`), with the device token, as python-tuf's own fetcher does, but
written on public APIs only (tuf's FetcherInterface, urllib3's ProxyManager,
the standard library's getproxies)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.request import getproxies

import tuf
import urllib3
from tuf.api.exceptions import DownloadHTTPError, SlowRetrievalError
from tuf.ngclient import FetcherInterface
from urllib3.util import parse_url


class EnvironmentProxies:
    """One urllib3 pool per proxy the environment names for a URL (a plain
    PoolManager where none applies), read once, when created.

    `no_proxy` lists hosts and domains that go direct (`*` for all); a
    scheme's own proxy comes before `all_proxy`.
    """

    def __init__(self, **pool_options: Any) -> None:
        self._pool_options = pool_options
        self._pools: dict[str | None, urllib3.PoolManager] = {}
        proxies = getproxies()
        self._all = proxies.pop("all", None)
        no_proxy = proxies.pop("no", None) or ""
        self._direct_hosts = [h.lstrip(".") for h in no_proxy.replace(" ", "").split(",") if h]
        self._by_scheme = proxies

    def proxy_for(self, url: str) -> str | None:
        parsed = parse_url(url)
        host = parsed.host
        if host is None:
            return None
        for direct in self._direct_hosts:
            if direct in ("*", host) or host.endswith(f".{direct}"):
                return None
        return self._by_scheme.get(parsed.scheme or "") or self._all

    def pool_for(self, url: str) -> urllib3.PoolManager:
        proxy = self.proxy_for(url)
        if proxy not in self._pools:
            self._pools[proxy] = (
                urllib3.PoolManager(**self._pool_options)
                if proxy is None
                else urllib3.ProxyManager(proxy, **self._pool_options)
            )
        return self._pools[proxy]

    def request(self, method: str, url: str, **options: Any) -> urllib3.BaseHTTPResponse:
        return self.pool_for(url).request(method, url, **options)


class TokenFetcher(FetcherInterface):
    """python-tuf's urllib3 fetcher, also sending the device token (private
    repositories): the same timeout, chunks and errors."""

    def __init__(self, token: str, socket_timeout: float = 30.0, chunk_size: int = 400_000) -> None:
        self.socket_timeout = socket_timeout
        self.chunk_size = chunk_size
        self.proxies = EnvironmentProxies(
            headers={
                "User-Agent": f"upgrade-agent python-tuf/{tuf.__version__}",
                "Authorization": f"Bearer {token}",
            }
        )

    def _fetch(self, url: str) -> Iterator[bytes]:
        try:
            response = self.proxies.request(
                "GET",
                url,
                preload_content=False,
                timeout=urllib3.Timeout(self.socket_timeout),
            )
        except urllib3.exceptions.MaxRetryError as exc:
            if isinstance(exc.reason, urllib3.exceptions.TimeoutError):
                raise SlowRetrievalError from exc
            raise
        if response.status >= 400:
            response.close()
            raise DownloadHTTPError(
                f"HTTP error occurred with status {response.status}", response.status
            )
        return self._chunks(response)

    def _chunks(self, response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
        try:
            yield from response.stream(self.chunk_size)
        except urllib3.exceptions.TimeoutError as exc:
            # The gap between two bytes passed the timeout mid-stream.
            raise SlowRetrievalError from exc
        except urllib3.exceptions.MaxRetryError as exc:
            if isinstance(exc.reason, urllib3.exceptions.TimeoutError):
                raise SlowRetrievalError from exc
            raise
        finally:
            response.release_conn()
