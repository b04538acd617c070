"""The engine cache: built TensorRT plans keyed by everything that makes a plan valid.

A plan is only valid for the graph it was built from, the TensorRT version that built it,
the GPU model (name and compute capability), its precision and its batch profile. Those six
fields are the :class:`EngineKey`; its :attr:`~EngineKey.digest` (sha256 of their canonical
JSON, 24 hex digits) names the entry, so engines are built once, not at every start.

Layout (``$FQM_ENGINE_CACHE``, else ``$FQM_CACHE/engines``, else ``~/.cache/fqm/engines``)::

    <root>/<digest>/engine.plan       the serialized engine
    <root>/<digest>/manifest.json     key fields, source, variant, interface, size, date
    <root>/timing/<trt>-sm<cc>.cache  the builder's timing cache, reused across builds
    <root>/.tmp-*                     entries being written (ignored by readers)

Writes are atomic: an entry is written into a ``.tmp-`` folder and renamed into place, so a
reader sees a whole entry or none, and of two concurrent builders of one key the second's
rename fails and its copy is dropped (the plans are equivalent). Removal renames the entry
away before deleting it. No TensorRT is needed to list, look up or remove entries.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engines.trt.errors import EngineCacheError
from engines.trt.interface import GraphInterface
from engines.trt.profile import BatchProfile

__all__ = [
    "CACHE_ENV",
    "CachedEngine",
    "EngineCache",
    "EngineKey",
    "default_cache_dir",
]

CACHE_ENV = "FQM_ENGINE_CACHE"
MANIFEST = "manifest.json"
PLAN = "engine.plan"
TMP_PREFIX = ".tmp-"
SCHEMA = 1
DIGEST_CHARS = 24
MIN_PREFIX = 6


def default_cache_dir() -> Path:
    """``$FQM_ENGINE_CACHE``, else ``$FQM_CACHE/engines``, else ``~/.cache/fqm/engines``
    (``$FQM_CACHE`` is where fqm keeps everything it downloads or builds)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("FQM_CACHE") or Path.home() / ".cache" / "fqm"
    return Path(base).expanduser() / "engines"


@dataclass(frozen=True, kw_only=True)
class EngineKey:
    """Everything a built plan depends on.

    Attributes:
        model_sha256: sha256 of the ONNX file's bytes.
        tensorrt_version: ``tensorrt.__version__`` of the builder.
        gpu_name: the device name (``NVIDIA H200``).
        compute_capability: ``major.minor`` (``9.0``).
        precision: ``fp32``, ``fp16``, ``bf16`` or ``fp8``.
        profile: the batch optimisation profile.
    """

    model_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    profile: BatchProfile

    def fields(self) -> dict[str, Any]:
        """The key as plain JSON values (the profile as ``{min, opt, max}``)."""
        return {
            "model_sha256": self.model_sha256,
            "tensorrt_version": self.tensorrt_version,
            "gpu_name": self.gpu_name,
            "compute_capability": self.compute_capability,
            "precision": self.precision,
            "profile": self.profile.as_dict(),
        }

    @property
    def digest(self) -> str:
        """The entry's name: a pure function of :meth:`fields` (canonical JSON, sha256)."""
        text = json.dumps(self.fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> EngineKey:
        return cls(
            model_sha256=str(data["model_sha256"]),
            tensorrt_version=str(data["tensorrt_version"]),
            gpu_name=str(data["gpu_name"]),
            compute_capability=str(data["compute_capability"]),
            precision=str(data["precision"]),
            profile=BatchProfile.from_dict(data["profile"]),
        )


@dataclass(frozen=True, kw_only=True)
class CachedEngine:
    """One cache entry, as its manifest describes it."""

    key: EngineKey
    path: Path
    source: str = ""
    variant: str | None = None
    interface: GraphInterface | None = None
    plan_bytes: int = 0
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return self.key.digest

    @property
    def plan_path(self) -> Path:
        return self.path / PLAN

    def manifest(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "digest": self.key.digest,
            "key": self.key.fields(),
            "source": self.source,
            "variant": self.variant,
            "interface": self.interface.as_dict() if self.interface else None,
            "plan_bytes": self.plan_bytes,
            "created": self.created,
            "extra": self.extra,
        }

    @classmethod
    def from_manifest(cls, data: dict[str, Any], path: Path) -> CachedEngine:
        if data.get("schema") != SCHEMA:
            raise EngineCacheError(f"{path}: manifest schema {data.get('schema')!r}, not {SCHEMA}")
        key = EngineKey.from_fields(data["key"])
        if data.get("digest") != key.digest:
            raise EngineCacheError(f"{path}: manifest digest does not match its key fields")
        interface = data.get("interface")
        return cls(
            key=key,
            path=path,
            source=str(data.get("source", "")),
            variant=data.get("variant"),
            interface=GraphInterface.from_dict(interface) if interface else None,
            plan_bytes=int(data.get("plan_bytes", 0)),
            created=str(data.get("created", "")),
            extra=dict(data.get("extra") or {}),
        )


class EngineCache:
    """A folder of built engines (see the module docstring for the layout)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def __repr__(self) -> str:
        return f"EngineCache({str(self.root)!r})"

    def _read(self, entry: Path) -> CachedEngine | None:
        try:
            data = json.loads((entry / MANIFEST).read_text())
            cached = CachedEngine.from_manifest(data, entry)
        except (OSError, ValueError, KeyError, TypeError, EngineCacheError):
            return None
        if cached.digest != entry.name or not cached.plan_path.is_file():
            return None
        return cached

    def list(self) -> list[CachedEngine]:
        """Every complete entry, oldest first (half-written and foreign folders skipped)."""
        if not self.root.is_dir():
            return []
        entries = [
            e
            for p in sorted(self.root.iterdir())
            if p.is_dir() and not p.name.startswith(".") and (e := self._read(p)) is not None
        ]
        return sorted(entries, key=lambda e: (e.created, e.digest))

    def lookup(self, key: EngineKey) -> CachedEngine | None:
        """The entry built for ``key``, or ``None``."""
        return self._read(self.root / key.digest)

    def find(self, digest: str) -> CachedEngine:
        """The entry whose digest is ``digest`` or starts with it (at least 6 characters).

        Raises:
            EngineCacheError: no such entry, or a prefix shared by several.
        """
        digest = digest.strip().lower()
        exact = self._read(self.root / digest) if digest else None
        if exact is not None:
            return exact
        matches = [
            e for e in self.list() if len(digest) >= MIN_PREFIX and e.digest.startswith(digest)
        ]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise EngineCacheError(
                f"engine key {digest!r} is ambiguous in {self.root}: "
                f"{', '.join(m.digest for m in matches)}"
            )
        raise EngineCacheError(
            f"no engine {digest!r} in {self.root}; `fqm engines list` shows the keys"
        )

    def store(
        self,
        key: EngineKey,
        plan: bytes,
        *,
        source: str = "",
        variant: str | None = None,
        interface: GraphInterface | None = None,
        extra: dict[str, Any] | None = None,
    ) -> CachedEngine:
        """Write an entry atomically; when another writer got there first, return theirs."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / key.digest
        tmp = self.root / f"{TMP_PREFIX}{key.digest}-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            entry = CachedEngine(
                key=key,
                path=final,
                source=source,
                variant=variant,
                interface=interface,
                plan_bytes=len(plan),
                created=datetime.now(UTC).isoformat(timespec="seconds"),
                extra=dict(extra or {}),
            )
            _write_synced(tmp / PLAN, plan)
            _write_synced(tmp / MANIFEST, json.dumps(entry.manifest(), indent=2).encode())
            try:
                os.rename(tmp, final)
            except OSError:
                existing = self._read(final)
                if existing is None:
                    raise EngineCacheError(
                        f"{final} exists but is not a valid engine entry; remove it"
                    ) from None
                return existing
            return entry
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def remove(self, digest: str) -> CachedEngine:
        """Remove one entry (a full digest or a unique prefix); return what was removed."""
        entry = self.find(digest)
        self._delete(entry.path)
        return entry

    def remove_all(self) -> int:
        """Remove every entry (the timing caches stay); return how many."""
        entries = self.list()
        for entry in entries:
            self._delete(entry.path)
        return len(entries)

    def _delete(self, path: Path) -> None:
        doomed = self.root / f"{TMP_PREFIX}rm-{path.name}-{uuid.uuid4().hex}"
        try:
            os.rename(path, doomed)
        except FileNotFoundError:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def timing_cache_path(self, tensorrt_version: str, compute_capability: str) -> Path:
        """The timing cache shared by builds of one TensorRT version on one GPU generation."""
        return self.root / "timing" / f"{tensorrt_version}-sm{compute_capability}.cache"

    def write_timing_cache(self, path: Path, data: bytes) -> None:
        """Replace the timing cache atomically (temp file + rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{TMP_PREFIX}{path.name}-{uuid.uuid4().hex}")
        try:
            _write_synced(tmp, data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
