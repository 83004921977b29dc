"""Fetch the MovieLens archive: an https URL, a ``file://`` URL or a local path.

httpx streams the body (with connect/read timeouts), tqdm shows progress and tenacity
retries transient failures with exponential backoff. The file is written under a
temporary name and renamed only when complete, so a cut-off download never passes for
the archive. What retrying cannot fix fails at once and says what to set: a local path
that does not exist, and a host name that does not resolve (no network).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
from tenacity import (
    RetryError,
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)
from tqdm import tqdm

from recsys.errors import ConfigError, DataError, DownloadError

log = logging.getLogger(__name__)

WHAT_TO_SET = (
    "point --source or RECSYS_DATA_URL at a copy of the data set's archive, e.g. ml-100k.zip "
    "(a path, file:// or https URL; RECSYS_DATASET names its layout)"
)
# A reachable server answers a connect in well under this; a dead network should not wait the read timeout.
_CONNECT_TIMEOUT_S = 10.0


def fetch_archive(source: str, download_dir: Path, *, timeout: float = 60.0, retries: int = 4) -> Path:
    """Return a local path to the archive named by ``source``, downloading it if needed."""
    path = local_archive(source)
    if path is not None:
        return path
    target = download_dir / (Path(urlparse(source).path).name or "download.zip")
    if target.is_file():
        log.info("using cached download %s", target)
        return target
    download_dir.mkdir(parents=True, exist_ok=True)
    _download(source, target, timeout=timeout, retries=retries)
    return target


def local_archive(source: str) -> Path | None:
    """The existing local file ``source`` names, or None for an http(s) URL; no network is used.

    A missing file is a ``DataError``, not a ``DownloadError``: no retry can make it appear,
    so the CLI and the Airflow task fail at once.
    """
    parsed = urlparse(source)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme not in ("", "file"):
        raise ConfigError(f"unsupported data source scheme {parsed.scheme!r} in {source!r}; {WHAT_TO_SET}")
    path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(source)
    if not path.is_file():
        raise DataError(f"data archive not found: {path}; {WHAT_TO_SET}")
    return path


def _download(url: str, target: Path, *, timeout: float, retries: int) -> None:
    attempt = retry(
        stop=stop_after_attempt(retries),
        wait=wait_exponential(multiplier=1, min=1, max=30),
        retry=retry_if_exception(_is_transient),
        before_sleep=lambda state: log.warning(
            "download attempt %d failed (%s); retrying", state.attempt_number, state.outcome.exception()
        ),
    )(_download_once)
    try:
        attempt(url, target, timeout)
    except RetryError as exc:
        cause = exc.last_attempt.exception()
        raise DownloadError(f"could not download {url} after {retries} attempts: {cause}{_hint(cause)}") from cause
    except httpx.HTTPError as exc:
        if _cannot_resolve(exc):
            host = urlparse(url).hostname
            raise DownloadError(
                f"could not download {url}: cannot resolve {host} (no network?); {WHAT_TO_SET}"
            ) from exc
        raise DownloadError(f"could not download {url}: {exc}") from exc


def _hint(exc: BaseException | None) -> str:
    """A server that cannot be reached at all may be a machine offline: say how to use a local copy."""
    return f"; {WHAT_TO_SET}" if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout) else ""


def _download_once(url: str, target: Path, timeout: float) -> None:
    partial = target.with_suffix(target.suffix + ".part")
    limits = httpx.Timeout(timeout, connect=min(timeout, _CONNECT_TIMEOUT_S))
    try:
        with httpx.stream("GET", url, timeout=limits, follow_redirects=True) as response:
            response.raise_for_status()
            total = int(response.headers.get("content-length", 0)) or None
            with (
                partial.open("wb") as out,
                tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=None) as bar,
            ):
                for chunk in response.iter_bytes(chunk_size=1 << 16):
                    out.write(chunk)
                    bar.update(len(chunk))
            if total is not None and partial.stat().st_size != total:
                raise httpx.ReadError(f"got {partial.stat().st_size} of {total} bytes")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _is_transient(exc: BaseException) -> bool:
    """Network trouble and 5xx/429 are worth retrying; a 404 or a name that does not resolve is not."""
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500 or exc.response.status_code == 429
    return isinstance(exc, httpx.TransportError) and not _cannot_resolve(exc)


def _cannot_resolve(exc: BaseException) -> bool:
    """DNS gave no address (httpx chains the socket.gaierror): offline, or a typo in the host."""
    while exc is not None:
        if isinstance(exc, socket.gaierror):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


if __name__ == "__main__":  # scripts/pipeline.sh checks RECSYS_DATA_URL before it starts Airflow
    from recsys.config import get_settings
    from recsys.errors import RecsysError

    try:
        local_archive(get_settings().source_url)
    except RecsysError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
