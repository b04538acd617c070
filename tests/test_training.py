"""DSL-FIQA training on CPU with the tiny configuration: no timings, only behaviour.

The dataset is built in tmp_path in the official layout from real pictures (two still
faces and frames of the carphone video); the landmarks are a fixed synthetic 68-point
template (training only needs their format).
"""

from __future__ import annotations

import fractions
import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from engines.dataset import FiqaDataset, normalized_mos, read_image_rgb
from engines.dslfiqa.checkpoint import CheckpointError, read_state_dict
from engines.dslfiqa.degradation_encoder import DegradationEncoder
from engines.dslfiqa.model import load_dslfiqa
from engines.dslfiqa.preprocess import landmark_vector
from engines.dslfiqa.quality_net import QualityNet
from engines.dslfiqa.training import (
    ContrastiveTrainConfig,
    Degradation,
    DegradationTrainer,
    DualSetSampler,
    ModelConfig,
    QualityTrainConfig,
    QualityTrainer,
    charbonnier,
    info_nce,
    load_trained,
    read_model_config,
    sample_degradation,
    save_weights,
)
from engines.dslfiqa.training.contrastive import (
    clip_from_video,
    read_video_frames,
    square_resize,
)
from engines.dslfiqa.training.data import find_split, sample_rng, train_landmark_vector
from engines.dslfiqa.training.degradations import (
    apply_op,
    blockiness,
    downscale,
    gaussian_blur,
    jpeg,
    laplacian_variance,
)
from engines.dslfiqa.training.dual_set import (
    DualSetConfig,
    ema_update,
    false_negative_mask,
    soft_proximity_loss,
    soft_proximity_targets,
)
from monitor.assets import asset_path
from monitor.cli import cli
from pipelines.av_source import AvFileSource
from tests.support.clips import cut

TINY = ModelConfig.tiny()
CARPHONE_FRAMES = 6


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def landmark_template(size: int = 512) -> np.ndarray:
    """68 (x, y) points: jaw, brows, nose, eyes, mouth, roughly where an aligned face has them."""
    t = np.linspace(0, np.pi, 17)
    jaw = np.stack([0.5 + 0.38 * np.cos(np.pi - t), 0.45 + 0.42 * np.sin(t)], 1)
    brows = np.stack([np.linspace(0.22, 0.78, 10), np.full(10, 0.36)], 1)
    nose = np.stack([np.full(9, 0.5), np.linspace(0.42, 0.62, 9)], 1)
    eyes = np.stack(
        [np.r_[np.linspace(0.28, 0.42, 6), np.linspace(0.58, 0.72, 6)], np.full(12, 0.44)], 1
    )
    a = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    mouth = np.stack([0.5 + 0.14 * np.cos(a), 0.74 + 0.05 * np.sin(a)], 1)
    pts = np.concatenate([jaw, brows, nose, eyes, mouth]) * size
    assert pts.shape == (68, 2)
    return pts.astype(np.float32)


def write_png(image: np.ndarray, path: Path) -> None:
    enc = av.CodecContext.create("png", "w")
    enc.width, enc.height, enc.pix_fmt = image.shape[1], image.shape[0], "rgb24"
    enc.time_base = fractions.Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    path.write_bytes(b"".join(bytes(p) for p in [*enc.encode(frame), *enc.encode(None)]))


def carphone_frames(name: str, n: int = CARPHONE_FRAMES) -> list[np.ndarray]:
    frames = []
    with AvFileSource(asset_path(name)) as src:
        for frame in src.frames():
            frames.append(np.array(frame.image))
            if len(frames) == n:
                break
    return frames


@pytest.fixture(scope="module")
def faces() -> list[np.ndarray]:
    """Six real 512x512 RGB pictures: two stills, two clean and two compressed video frames."""
    stills = [
        read_image_rgb(asset_path("astronaut.png")),
        read_image_rgb(asset_path("grace_hopper_512x512.jpg")),
    ]
    clean = carphone_frames("carphone_pristine.mp4", 2)
    bad = carphone_frames("carphone_distorted.mp4", 2)
    return [square_resize(im, 512) for im in [*stills, *clean, *bad]]


def make_split(root: Path, images: list[np.ndarray], mos: list[float]) -> Path:
    (root / "img").mkdir(parents=True)
    (root / "landmark").mkdir()
    names = []
    for i, im in enumerate(images):
        name = f"face{i:02d}.png"
        write_png(im, root / "img" / name)
        np.save(root / "landmark" / f"face{i:02d}.npy", landmark_template())
        names.append(name)
    (root / "label.json").write_text(json.dumps({"Image": names, "MOS": mos}))
    return root


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory, faces: list[np.ndarray]) -> Path:
    root = tmp_path_factory.mktemp("gfiqa")
    make_split(root / "train", faces, [80.0, 75.0, 70.0, 65.0, 30.0, 25.0])
    make_split(root / "val", faces[:4], [80.0, 75.0, 40.0, 20.0])
    return root


def quiet_config(**kw: object) -> QualityTrainConfig:
    base = {"batch_size": 2, "lr": 1e-3, "log_every": 0}
    base.update(kw)
    return QualityTrainConfig(**base)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- configs
def _keys(module: torch.nn.Module) -> list[str]:
    return list(module.state_dict().keys())


def test_tiny_model_has_the_official_keys() -> None:
    with torch.device("meta"):
        assert _keys(TINY.build_iqa()) == _keys(QualityNet())
        assert _keys(TINY.build_de()) == _keys(DegradationEncoder())


def test_official_config_builds_the_default_architecture() -> None:
    cfg = ModelConfig.official()
    assert cfg.is_official
    assert not TINY.is_official
    with torch.device("meta"):
        built, default = cfg.build_iqa().state_dict(), QualityNet().state_dict()
    assert {k: v.shape for k, v in built.items()} == {k: v.shape for k, v in default.items()}
    assert ModelConfig.from_dict(json.loads(TINY.to_json())) == TINY


def test_bad_sizes_are_rejected() -> None:
    with pytest.raises(ValueError, match="multiple"):
        ModelConfig(crop_size=100).validate()


# ---------------------------------------------------------------------------- data
def test_trainer_scales_mos_per_split_and_transforms_faces(
    dataset_dir: Path, tmp_path: Path
) -> None:
    train = FiqaDataset.from_dir(dataset_dir / "train")
    val = FiqaDataset.from_dir(dataset_dir / "val")
    trainer = QualityTrainer(TINY, quiet_config(), train, val, tmp_path)
    # DSL_FIQA.md 9: MOS min-max scaled to [0,1] within each split, not across splits.
    np.testing.assert_array_equal(trainer.train_labels, normalized_mos(train.mos))
    assert trainer.train_labels[[0, -1]].tolist() == [1.0, 0.0]
    assert trainer.val_labels is not None
    np.testing.assert_allclose(trainer.val_labels, [1.0, 55 / 60, 20 / 60, 0.0])
    x, vec, y = trainer.example(train, trainer.train_labels, 0, sample_rng(0, 0, 0))
    assert x.shape == (3, TINY.crop_size, TINY.crop_size)
    assert x.dtype == np.float32
    assert -1.0 <= x.min() <= x.max() <= 1.0
    assert vec.shape == (500,)
    assert y == 1.0


def test_training_landmark_vector_matches_the_test_path() -> None:
    pts = landmark_template()
    for top, left in [(0, 0), (99, 90), (127, 3)]:
        got = train_landmark_vector(pts, top, left, 384)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got.astype(np.float32), landmark_vector(pts, top, left))


def test_charbonnier() -> None:
    pred, target = torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0])
    expected = (np.sqrt(1e-6) + np.sqrt(1 + 1e-6)) / 2
    assert float(charbonnier(pred, target)) == pytest.approx(expected, rel=1e-6)


# ---------------------------------------------------------------------------- quality stage
def test_quality_training_overfits_a_fixed_batch(dataset_dir: Path, tmp_path: Path) -> None:
    trainer = QualityTrainer(
        TINY,
        quiet_config(batch_size=4, cosine_t_max=1000),
        FiqaDataset.from_dir(dataset_dir / "train"),
        None,
        tmp_path,
    )
    batch = trainer.load_batch(0)
    assert batch[0].shape == (4, 3, TINY.crop_size, TINY.crop_size)

    def eval_loss() -> float:  # without dropout, so the comparison is not noisy
        trainer.iqa.eval()
        with torch.no_grad():
            return float(charbonnier(trainer.predict(batch[0], batch[1]), batch[2]))

    before = eval_loss()
    losses = [trainer.train_step(batch) for _ in range(20)]
    assert trainer.step == 20
    assert eval_loss() < 0.5 * before, (before, losses)
    # The DE is frozen: no gradient reached it.
    assert all(p.grad is None and not p.requires_grad for p in trainer.de.parameters())


def test_checkpoint_is_official_format_and_reloads_strictly(
    dataset_dir: Path, tmp_path: Path
) -> None:
    train, val = (
        FiqaDataset.from_dir(dataset_dir / "train"),
        FiqaDataset.from_dir(dataset_dir / "val"),
    )
    trainer = QualityTrainer(TINY, quiet_config(epochs=1), train, val, tmp_path)
    history = trainer.fit()
    assert [h.epoch for h in history] == [1]
    assert history[0].val is not None
    assert set(history[0].val) == {"srcc", "plcc", "mse"}
    for name in ("IQA.pt", "DE.pt", "model_config.json", "last.pt"):
        assert (tmp_path / name).is_file(), name
    iqa_sd = torch.load(tmp_path / "IQA.pt", weights_only=True)
    with torch.device("meta"):
        assert list(iqa_sd) == _keys(QualityNet())  # bare official keys, no prefix/wrapper
    cfg = read_model_config(tmp_path)
    assert cfg == TINY
    model = load_trained(tmp_path / "DE.pt", tmp_path / "IQA.pt", cfg)
    for k, v in model.iqa.state_dict().items():
        torch.testing.assert_close(v, trainer.iqa.state_dict()[k], rtol=0, atol=0)
    x = torch.zeros(1, 3, cfg.crop_size, cfg.crop_size)
    with torch.no_grad():
        assert model(x, torch.zeros(1, 500)).shape == (1,)
    # Official-size loader: same keys, so it is the shapes it must reject.
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_dslfiqa(tmp_path / "DE.pt", tmp_path / "IQA.pt")


@pytest.mark.slow
def test_official_size_checkpoint_loads_with_load_dslfiqa(tmp_path: Path) -> None:
    cfg = ModelConfig.official()
    save_weights(cfg.build_de(), tmp_path / "DE.pt", cfg)
    save_weights(cfg.build_iqa(), tmp_path / "IQA.pt", cfg)
    load_dslfiqa(tmp_path / "DE.pt", tmp_path / "IQA.pt")


def test_resume_continues_from_the_saved_step(dataset_dir: Path, tmp_path: Path) -> None:
    train = FiqaDataset.from_dir(dataset_dir / "train")  # 6 faces, batch 2: 3 steps/epoch
    straight = QualityTrainer(TINY, quiet_config(max_steps=5), train, None, tmp_path / "a")
    straight.fit()

    first = QualityTrainer(TINY, quiet_config(max_steps=2), train, None, tmp_path / "b")
    first.fit()
    assert torch.load(tmp_path / "b" / "last.pt", weights_only=True)["step"] == 2
    second = QualityTrainer(TINY, quiet_config(max_steps=5), train, None, tmp_path / "b")
    assert second.resume()
    assert second.step == 2
    second.fit()
    assert second.step == 5
    # The resumed run took exactly the steps the uninterrupted one took.
    for k, v in straight.iqa.state_dict().items():
        torch.testing.assert_close(second.iqa.state_dict()[k], v, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="seed"):
        QualityTrainer(TINY, quiet_config(seed=1), train, None, tmp_path / "b").resume()


# ---------------------------------------------------------------------------- degradations
@pytest.fixture(scope="module")
def face(faces: list[np.ndarray]) -> np.ndarray:
    return faces[1]


def test_degradations_are_deterministic_given_a_seed(face: np.ndarray) -> None:
    recipes = [sample_degradation(np.random.default_rng(7)) for _ in range(2)]
    assert recipes[0] == recipes[1]
    other = sample_degradation(np.random.default_rng(8))
    assert other != recipes[0]
    noisy = Degradation((("noise", 10.0), ("jpeg", 20.0), ("blur", 1.5)), seed=3)
    a, b = noisy.apply(face), noisy.apply(face)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, Degradation(noisy.steps, seed=4).apply(face))
    assert a.shape == face.shape
    assert a.dtype == np.uint8
    np.testing.assert_array_equal(face, read_image_rgb(asset_path("grace_hopper_512x512.jpg")))


def test_degradations_move_the_image_in_the_intended_direction(face: np.ndarray) -> None:
    sharp = laplacian_variance(face)
    assert laplacian_variance(gaussian_blur(face, 2.0)) < 0.2 * sharp
    assert laplacian_variance(downscale(face, 4.0)) < 0.2 * sharp
    assert laplacian_variance(apply_op(face, "noise", 20.0, np.random.default_rng(0))) > 2 * sharp
    assert blockiness(jpeg(face, 31)) > 1.5 * max(blockiness(face), blockiness(jpeg(face, 2)))
    dark = apply_op(face, "exposure", 2.0, np.random.default_rng(0))
    assert dark.mean() < face.mean()
    flat = apply_op(face, "contrast", 0.5, np.random.default_rng(0))
    assert flat.std() < face.std()
    coded = apply_op(face, "h264", 48, np.random.default_rng(0))
    assert laplacian_variance(coded) < sharp
    with pytest.raises(ValueError, match="unknown degradation"):
        apply_op(face, "sepia", 1.0, np.random.default_rng(0))


# ---------------------------------------------------------------------------- contrastive stage
def test_training_decodes_the_same_frames_as_the_pipelines_source() -> None:
    """The training side decodes with PyAV itself; the pictures are those a stream gets."""
    path = asset_path("carphone_distorted.mp4")
    every_frame = carphone_frames("carphone_distorted.mp4", n=2 * CARPHONE_FRAMES)
    mine = read_video_frames(path, max_frames=CARPHONE_FRAMES)
    assert len(mine) == CARPHONE_FRAMES
    for a, b in zip(mine, every_frame, strict=False):
        assert a.dtype == np.uint8
        np.testing.assert_array_equal(a, b)
    every_2nd = read_video_frames(path, max_frames=CARPHONE_FRAMES, every=2)
    for a, b in zip(every_2nd, every_frame[::2], strict=True):
        np.testing.assert_array_equal(a, b)


def test_training_refuses_a_file_that_is_not_video(tmp_path: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    with pytest.raises(ValueError, match=r"notes\.mp4.*not a readable video"):
        read_video_frames(bad)


@pytest.fixture(scope="module")
def sampler_parts(faces: list[np.ndarray]) -> tuple[list[np.ndarray], list]:
    size = TINY.image_size
    pristine = [square_resize(f, size) for f in faces[:4]]
    clip = clip_from_video(
        asset_path("carphone_distorted.mp4"),
        size,
        clean=asset_path("carphone_pristine.mp4"),
        max_frames=CARPHONE_FRAMES,
    )
    assert len(clip.frames) == len(clip.clean) == CARPHONE_FRAMES
    return pristine, [clip]


def contrastive_config(**kw: object) -> ContrastiveTrainConfig:
    base = {"synthetic_per_batch": 4, "real_per_batch": 2, "queue_size": 0, "lr": 1e-3}
    base.update(kw)
    return ContrastiveTrainConfig(**base)  # type: ignore[arg-type]


def test_dual_set_batches_are_deterministic(sampler_parts: tuple) -> None:
    pristine, clips = sampler_parts
    sampler = DualSetSampler(pristine, clips, TINY.image_size, TINY.crop_size, contrastive_config())
    a, b = sampler.batch(3), sampler.batch(3)
    c = TINY.crop_size
    assert a.queries.shape == a.keys.shape == (6, 3, c, c)
    assert a.negatives.shape == (2, 3, c, c)  # the clean twins of the two real queries
    torch.testing.assert_close(a.queries, b.queries, rtol=0, atol=0)
    assert a.labels == b.labels
    assert not torch.equal(a.queries, sampler.batch(4).queries)
    assert a.labels[-1].startswith("carphone_distorted.mp4[")


def test_info_nce_prefers_matching_pairs() -> None:
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(8, 16, generator=g), dim=1)
    shuffled = q[torch.randperm(8, generator=g)]
    assert info_nce(q, q, None, None, 0.2) < info_nce(q, shuffled, None, None, 0.2)
    queue = torch.nn.functional.normalize(torch.randn(32, 16, generator=g), dim=1)
    assert info_nce(q, q, q[:2], queue, 0.2) > info_nce(q, q, None, None, 0.2)


def test_contrastive_loss_decreases_and_saves_an_official_de(
    sampler_parts: tuple, tmp_path: Path
) -> None:
    pristine, clips = sampler_parts
    cfg = contrastive_config(steps=2, log_every=0, save_every=0, queue_size=16)
    sampler = DualSetSampler(pristine, clips, TINY.image_size, TINY.crop_size, cfg)
    trainer = DegradationTrainer(TINY, cfg, sampler, tmp_path)
    batch = sampler.batch(0)
    with torch.no_grad():
        trainer.de.train()
        before = float(trainer.loss(batch))
    losses = [trainer.train_step(batch) for _ in range(12)]
    assert len(trainer.queue) == 16  # 6 keys a step, FIFO capped at queue_size
    with torch.no_grad():
        after = float(info_nce(
            *(torch.nn.functional.normalize(trainer.de(x.to(trainer.device))[1].flatten(1), dim=1)
              for x in (batch.queries, batch.keys)),
            None, None, cfg.temperature,
        ))  # fmt: skip
    assert after < before, (before, after, losses)

    fresh = DegradationTrainer(TINY, cfg, sampler, tmp_path / "run")
    fresh.fit()
    de_sd = read_state_dict(tmp_path / "run" / "DE.pt")
    with torch.device("meta"):
        assert list(de_sd) == _keys(DegradationEncoder())
    assert read_model_config(tmp_path / "run") == TINY
    resumed = DegradationTrainer(TINY, contrastive_config(steps=3), sampler, tmp_path / "run")
    assert resumed.resume()
    assert resumed.step == 2
    assert len(resumed.queue) == 12


def test_soft_proximity_targets_are_distributions_that_sharpen() -> None:
    g = torch.Generator().manual_seed(1)
    real = torch.nn.functional.normalize(torch.randn(3, 16, generator=g), dim=1)
    syn = torch.nn.functional.normalize(torch.randn(5, 16, generator=g), dim=1)
    real.requires_grad_(True)
    soft = soft_proximity_targets(real, syn, 0.5)
    sharp = soft_proximity_targets(real, syn, 0.05)
    assert soft.shape == (3, 5)
    assert not soft.requires_grad  # stop-gradient
    torch.testing.assert_close(soft.sum(1), torch.ones(3))
    torch.testing.assert_close(sharp.sum(1), torch.ones(3))
    assert bool((soft >= 0).all())
    # Lower temperature: more mass on each row's most similar synthetic sample, lower entropy.
    assert torch.equal(soft.argmax(1), sharp.argmax(1))
    assert bool((sharp.max(1).values > soft.max(1).values).all())
    entropy = lambda p: -(p * p.clamp_min(1e-12).log()).sum(1)  # noqa: E731
    assert bool((entropy(sharp) < entropy(soft)).all())


def test_soft_proximity_pulls_real_toward_the_synthetic_it_resembles() -> None:
    g = torch.Generator().manual_seed(2)
    syn = torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=1)
    raw = torch.randn(1, 8, generator=g)
    real_k = torch.nn.functional.normalize(raw + 0.05 * torch.randn(1, 8, generator=g), dim=1)
    nearest = int(soft_proximity_targets(real_k, syn, 0.05).argmax())
    param = raw.clone().requires_grad_(True)

    def similarity() -> float:
        return float(torch.nn.functional.normalize(param.detach(), dim=1) @ syn[nearest])

    before = similarity()
    opt = torch.optim.SGD([param], lr=0.1)
    for _ in range(20):
        real_q = torch.nn.functional.normalize(param, dim=1)
        loss = soft_proximity_loss(real_q, real_k, syn, 0.05, 0.2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert similarity() > before
    assert float(soft_proximity_loss(syn[:0], syn[:0], syn, 0.1, 0.2)) == 0.0


def test_false_negative_mask_removes_exactly_the_same_source_keys() -> None:
    groups = ["syn:blur(2)", "syn:noise(5)", "syn:blur(2)", "real:0:a", "real:0:a", "real:1:b"]
    extra = ["clean:0:a", "real:1:b", "syn:noise(5)", "real:9:z"]  # twins, then queue
    mask = false_negative_mask(groups, extra)
    assert mask.shape == (6, 10)
    expected = {(0, 2), (2, 0), (3, 4), (4, 3), (5, 7), (1, 8)}
    assert {tuple(ij) for ij in mask.nonzero().tolist()} == expected
    assert not bool(mask.diagonal().any())  # positives are never masked
    # Masked InfoNCE = per-row InfoNCE with exactly those columns left out.
    g = torch.Generator().manual_seed(3)
    q = torch.nn.functional.normalize(torch.randn(6, 16, generator=g), dim=1)
    k = torch.nn.functional.normalize(torch.randn(6, 16, generator=g), dim=1)
    extra_keys = torch.nn.functional.normalize(torch.randn(4, 16, generator=g), dim=1)
    keys, queries = torch.cat([k, extra_keys]), torch.cat([q, extra_keys])
    expected_loss = 0.0
    for i in range(6):
        keep = ~mask[i]
        for a, b in ((q[i], keys), (k[i], queries)):
            logits = (b[keep] @ a) / 0.2
            expected_loss -= float(torch.log_softmax(logits, 0)[int(keep[:i].sum())]) / 12
    masked = info_nce(q, k, None, extra_keys, 0.2, mask)
    assert float(masked) == pytest.approx(expected_loss, rel=1e-5)
    assert float(masked) != pytest.approx(float(info_nce(q, k, None, extra_keys, 0.2)))


def test_ema_key_encoder_moves_by_one_minus_m_of_the_difference() -> None:
    torch.manual_seed(0)
    query, key = TINY.build_de(), TINY.build_de()
    old = [p.detach().clone() for p in key.parameters()]
    m = 0.9
    ema_update(key, query, m)
    for pk, pold, pq in zip(key.parameters(), old, query.parameters(), strict=True):
        torch.testing.assert_close(pk - pold, (1 - m) * (pq - pold), rtol=1e-5, atol=1e-6)


def test_dual_set_loss_decreases_with_momentum_and_proximity(sampler_parts: tuple) -> None:
    pristine, clips = sampler_parts
    cfg = contrastive_config(steps=2, log_every=0, save_every=0, queue_size=8)
    sampler = DualSetSampler(pristine, clips, TINY.image_size, TINY.crop_size, cfg)
    dual = DualSetConfig(proximity_weight=1.0, proximity_temperature=0.1, momentum=0.5)
    trainer = DegradationTrainer(TINY, cfg, sampler, "unused", dual_set=dual)
    assert trainer.de_key is not None
    batch = sampler.batch(0)
    assert batch.groups[0].startswith("syn:")
    assert batch.groups[-1].startswith("real:0:")
    assert len(batch.negative_groups) == len(batch.negatives)
    trainer.de.train()
    with torch.no_grad():
        before = float(trainer.loss(batch))
    assert trainer.last_parts["proximity"] > 0
    key_before = [p.detach().clone() for p in trainer.de_key.parameters()]
    losses = [trainer.train_step(batch) for _ in range(12)]
    with torch.no_grad():
        after = float(trainer.loss(batch))
    assert after < before, (before, after, losses)
    assert not any(p.requires_grad for p in trainer.de_key.parameters())
    assert any(
        not torch.equal(a, b) for a, b in zip(key_before, trainer.de_key.parameters(), strict=True)
    )
    assert len(trainer.queue_groups) == len(trainer.queue) == 8


def test_dual_set_resume_reproduces_an_uninterrupted_run(
    sampler_parts: tuple, tmp_path: Path
) -> None:
    pristine, clips = sampler_parts
    dual = DualSetConfig(momentum=0.9)

    def run(out: Path, steps: int, resume: bool) -> DegradationTrainer:
        cfg = contrastive_config(steps=steps, log_every=0, save_every=0, queue_size=8)
        sampler = DualSetSampler(pristine, clips, TINY.image_size, TINY.crop_size, cfg)
        trainer = DegradationTrainer(TINY, cfg, sampler, out, dual_set=dual)
        if resume:
            assert trainer.resume()
        trainer.fit()
        return trainer

    whole = run(tmp_path / "whole", 3, False)
    run(tmp_path / "split", 2, False)
    resumed = run(tmp_path / "split", 3, True)
    assert resumed.step == whole.step == 3
    for a, b in (
        (whole.de.state_dict(), resumed.de.state_dict()),
        (whole.de_key.state_dict(), resumed.de_key.state_dict()),  # type: ignore[union-attr]
    ):
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)
    torch.testing.assert_close(whole.queue, resumed.queue, rtol=1e-5, atol=1e-6)
    assert whole.queue_groups == resumed.queue_groups


# ---------------------------------------------------------------------------- CLI
def test_cli_trains_resumes_and_pretrains(dataset_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "iqa"
    args = ["train", "quality", "--data", str(dataset_dir), "--out", str(out), "--tiny"]
    args += ["--batch-size", "2", "--lr", "1e-3", "--log-every", "1"]
    first = runner.invoke(cli, [*args, "--max-steps", "2"])
    assert first.exit_code == 0, first.output
    assert "step 2/2" in first.stderr
    assert "random degradation encoder" in first.stderr
    assert json.loads(first.stdout.strip().splitlines()[-1])["step"] == 2
    second = runner.invoke(cli, [*args, "--max-steps", "3"])
    assert second.exit_code == 0, second.output
    assert "resumed from" in second.stderr
    assert "step 3/3" in second.stderr
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert summary["step"] == 3
    assert summary["epochs"][0]["val"] is not None

    # What --tiny wrote loads in `fqm score` and `fqm eval` (it once failed on 40 shapes).
    train_split = find_split(dataset_dir, "train")
    scored = runner.invoke(
        cli, ["score", str(train_split), "--weights", str(out), "--mode", "center", "--json"]
    )
    assert scored.exit_code == 0, scored.output
    doc = json.loads(scored.stdout)
    assert doc["model"] == "dslfiqa-tiny"
    assert doc["faces"]
    assert all(np.isfinite(f["score"]) for f in doc["faces"])
    evaluated = runner.invoke(
        cli, ["eval", str(train_split), "--weights", str(out), "--mode", "center", "--json"]
    )
    assert evaluated.exit_code in (0, 1), evaluated.output  # 1: constant tiny predictions
    assert json.loads(evaluated.stdout)["scored"] == len(doc["faces"])

    de_out = tmp_path / "de"
    pair = [str(asset_path("carphone_pristine.mp4")), str(asset_path("carphone_distorted.mp4"))]
    result = runner.invoke(
        cli,
        [
            "train",
            "degradation",
            "--data",
            str(dataset_dir),
            "--out",
            str(de_out),
            "--tiny",
            "--steps",
            "2",
            "--synthetic-per-batch",
            "2",
            "--real-per-batch",
            "2",
            "--max-frames",
            str(CARPHONE_FRAMES),
            "--pair",
            *pair,
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["step"] == 2
    # The pre-trained DE plugs into quality training.
    third = runner.invoke(
        cli,
        [
            *args,
            "--max-steps",
            "1",
            "--de",
            str(de_out / "DE.pt"),
            "--no-resume",
            "--out",
            str(tmp_path / "iqa2"),
        ],
    )
    assert third.exit_code == 0, third.output


def test_cli_refuses_a_pair_that_is_not_frame_aligned(dataset_dir: Path, tmp_path: Path) -> None:
    base = [
        "train", "degradation", "--data", str(dataset_dir), "--out", str(tmp_path / "de"),
        "--tiny", "--steps", "1", "--max-frames", "40",
    ]  # fmt: skip
    sizes = [str(asset_path("carphone_pristine.mp4")), str(asset_path("franck.mp4"))]
    result = CliRunner().invoke(cli, [*base, "--pair", *sizes])
    assert result.exit_code == 1
    assert "pictures are 176x144 and" in result.output
    assert "Traceback" not in result.output
    short = tmp_path / "short.mp4"
    cut(asset_path("carphone_pristine.mp4"), short, frames=20)
    lengths = [str(short), str(asset_path("carphone_distorted.mp4"))]
    result = CliRunner().invoke(cli, [*base, "--pair", *lengths])
    assert result.exit_code == 1
    assert "20 and 40 frames" in result.output


def test_cli_explains_a_missing_dataset(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["train", "quality", "--data", str(tmp_path), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code != 0
    assert "label.json" in result.output


def test_cli_names_missing_landmarks(tmp_path: Path, faces: list[np.ndarray]) -> None:
    split = make_split(tmp_path / "data", faces[:2], [1.0, 2.0])
    (split / "landmark" / "face01.npy").unlink()
    result = CliRunner().invoke(
        cli, ["train", "quality", "--data", str(split), "--out", str(tmp_path / "o"), "--tiny"]
    )
    assert result.exit_code != 0
    assert "landmark files missing" in result.output
    assert "face01.npy" in result.output
