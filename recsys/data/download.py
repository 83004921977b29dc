"""Fetch the MovieLens archive: an https URL, a ``file://`` URL or a local path.

httpx streams the body (with connect/read timeouts), tqdm shows progress and tenacity
retries transient failures with exponential backoff. The file is written under a
temporary name and renamed only when complete, so a cut-off download never passes for
the archive.
"""

from __future__ import annotations

import logging
import os
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

from recsys.errors import DownloadError

log = logging.getLogger(__name__)


def fetch_archive(source: str, download_dir: Path, *, timeout: float = 60.0, retries: int = 4) -> Path:
    """Return a local path to the archive named by ``source``, downloading it if needed."""
    parsed = urlparse(source)
    if parsed.scheme in ("http", "https"):
        target = download_dir / (Path(parsed.path).name or "download.zip")
        if target.is_file():
            log.info("using cached download %s", target)
            return target
        download_dir.mkdir(parents=True, exist_ok=True)
        _download(source, target, timeout=timeout, retries=retries)
        return target
    path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(source)
    if parsed.scheme not in ("", "file"):
        raise DownloadError(f"unsupported data source scheme {parsed.scheme!r} in {source!r}")
    if not path.is_file():
        raise DownloadError(f"data archive not found: {path}")
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
        raise DownloadError(f"could not download {url} after {retries} attempts: {cause}") from cause
    except httpx.HTTPError as exc:
        raise DownloadError(f"could not download {url}: {exc}") from exc


def _download_once(url: str, target: Path, timeout: float) -> None:
    partial = target.with_suffix(target.suffix + ".part")
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
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
    """Network trouble and 5xx/429 are worth retrying; a 404 is not."""
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500 or exc.response.status_code == 429
    return isinstance(exc, httpx.TransportError)
