"""Image files on disk, addressed by content, plus signed expiring links to them.

Uploads, masks and results are written once under ``<root>/<k[:2]>/<key>``; the job
records only hold keys. A vendor that needs a URL gets ``public_url(key)``: our own
web server's address with an expiry and an HMAC, so a link is unguessable, dies on
its own, and never carries a platform token.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
from pathlib import Path
from urllib.parse import urlencode

_KEY_RE = re.compile(r"^[a-f0-9]{64}\.(png|jpg|webp)$")


class MediaError(Exception):
    pass


def _ext_for(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return "png"


class MediaStore:
    def __init__(
        self,
        root: Path,
        *,
        public_base_url: str = "",
        link_secret: bytes = b"",
        link_ttl_s: int = 3600,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.public_base_url = public_base_url.rstrip("/")
        # A fresh random secret when none is configured: links then die with the process.
        self._secret = link_secret or os.urandom(32)
        self.link_ttl_s = link_ttl_s

    def _path(self, key: str) -> Path:
        if not _KEY_RE.match(key):
            raise MediaError(f"bad media key {key!r}")
        return self.root / key[:2] / key

    def put(self, data: bytes) -> str:
        key = f"{hashlib.sha256(data).hexdigest()}.{_ext_for(data)}"
        path = self._path(key)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)  # atomic: a reader never sees half a file
        return key

    def read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as e:
            raise MediaError(f"media {key} is gone") from e

    def exists(self, key: str) -> bool:
        try:
            return self._path(key).exists()
        except MediaError:
            return False

    def path(self, key: str) -> Path:
        return self._path(key)

    # --- signed links -------------------------------------------------------------

    def _sign(self, key: str, expires: int) -> str:
        msg = f"{key}:{expires}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def public_url(self, key: str, *, ttl_s: int | None = None) -> str:
        if not self.public_base_url:
            raise MediaError("no public base URL is configured (IMAGEBOT_PUBLIC_BASE_URL)")
        self._path(key)  # validates the key
        expires = int(time.time()) + (ttl_s or self.link_ttl_s)
        query = urlencode({"exp": expires, "sig": self._sign(key, expires)})
        return f"{self.public_base_url}/media/{key}?{query}"

    def verify_link(self, key: str, expires: str, sig: str, *, now: float | None = None) -> bool:
        try:
            exp = int(expires)
        except ValueError:
            return False
        if exp < (now if now is not None else time.time()):
            return False
        if not _KEY_RE.match(key):
            return False
        return hmac.compare_digest(self._sign(key, exp), sig)
