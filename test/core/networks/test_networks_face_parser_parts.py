"""CelebAMask-HQ → paper face parts, one-hot / single-channel masks and the eq. 2 photo-loss weight map."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.morphable.parts import FacePart
from dfmvr_core.networks.face_parts import (
    CelebAClass,
    WeightMapConfig,
    celeba_to_face_parts,
    celeba_to_face_parts_table,
    dilate_mask,
    face_mask_channel,
    face_parts_one_hot,
    photo_weight_map,
)

F = FacePart
EXPECTED_TABLE = [
    F.OTHER,  # background
    F.SKIN,
    F.LEFT_BROW,
    F.RIGHT_BROW,
    F.LEFT_EYE,
    F.RIGHT_EYE,
    F.SKIN,  # eye_g
    F.OTHER,  # l_ear
    F.OTHER,  # r_ear
    F.OTHER,  # ear_r
    F.NOSE,
    F.MOUTH,
    F.UPPER_LIP,
    F.LOWER_LIP,
    F.OTHER,  # neck
    F.OTHER,  # neck_l
    F.OTHER,  # cloth
    F.OTHER,  # hair
    F.OTHER,  # hat
]


def test_mapping_table() -> None:
    assert celeba_to_face_parts_table().tolist() == [int(p) for p in EXPECTED_TABLE]


def test_celeba_to_face_parts_on_image() -> None:
    labels = torch.tensor([[[CelebAClass.HAIR, CelebAClass.U_LIP], [CelebAClass.L_EYE, CelebAClass.L_LIP]]])
    parts = celeba_to_face_parts(labels)
    assert parts.dtype == torch.int64 and parts.shape == (1, 2, 2)
    assert parts.tolist() == [[[F.OTHER, F.UPPER_LIP], [F.LEFT_EYE, F.LOWER_LIP]]]
    assert celeba_to_face_parts(labels.to(torch.uint8)).tolist() == parts.tolist()


def test_swap_left_right_and_glasses_parameters() -> None:
    labels = torch.tensor([[[CelebAClass.L_EYE, CelebAClass.R_EYE, CelebAClass.L_BROW, CelebAClass.R_BROW]]])
    swapped = celeba_to_face_parts(labels, swap_left_right=True)
    assert swapped.tolist() == [[[F.RIGHT_EYE, F.LEFT_EYE, F.RIGHT_BROW, F.LEFT_BROW]]]
    table = celeba_to_face_parts_table(swap_left_right=True)
    assert table[CelebAClass.NOSE] == F.NOSE and table[CelebAClass.U_LIP] == F.UPPER_LIP
    glasses = torch.tensor([[[CelebAClass.EYE_G]]])
    assert celeba_to_face_parts(glasses).item() == F.SKIN
    assert celeba_to_face_parts(glasses, glasses_part=F.OTHER).item() == F.OTHER


@pytest.mark.parametrize(
    "bad",
    [torch.zeros(2, 2, dtype=torch.int64), torch.zeros(1, 2, 2), torch.tensor([[[19]]]), torch.tensor([[[-1]]])],
)
def test_bad_labels_raise_shape_error_naming_argument(bad: torch.Tensor) -> None:
    with pytest.raises(ShapeError, match="labels"):
        celeba_to_face_parts(bad)


def test_one_hot_and_single_channel_mask() -> None:
    parts = torch.tensor([[[0, 1, 6], [9, 4, 0]]])
    one_hot = face_parts_one_hot(parts)
    assert one_hot.shape == (1, 10, 2, 3) and one_hot.dtype == torch.float32
    assert torch.equal(one_hot.argmax(1), parts) and torch.equal(one_hot.sum(1), torch.ones(1, 2, 3))
    channel = face_mask_channel(parts)
    assert channel.shape == (1, 1, 2, 3)
    assert torch.allclose(channel[0, 0], parts[0].float() / 9)
    assert channel.max() == 1.0 and channel.min() == 0.0
    with pytest.raises(ShapeError, match="parts"):
        face_parts_one_hot(torch.tensor([[[10]]]))
    with pytest.raises(ShapeError, match="parts"):
        face_mask_channel(torch.zeros(1, 1, 2, 2, dtype=torch.int64))
    with pytest.raises(ShapeError, match="parts"):
        face_mask_channel(torch.zeros(1, 2, 2))  # float labels


def _skin_disk_with_nose(size: int = 200, radius: int = 50, half_nose: int = 5) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    c = size // 2
    parts = torch.zeros(1, size, size, dtype=torch.int64)
    parts[0][(yy - c) ** 2 + (xx - c) ** 2 <= radius**2] = F.SKIN
    parts[0, c - half_nose : c + half_nose + 1, c - half_nose : c + half_nose + 1] = F.NOSE
    return parts


def test_weight_map_levels_on_synthetic_face() -> None:
    parts = _skin_disk_with_nose()
    w = photo_weight_map(parts, normalize=False)[0]
    assert w.shape == (200, 200) and w.dtype == torch.float32
    c = 100
    assert w[c, c] == 254  # nose
    assert w[c, c + 40] == 128  # skin, 35 px from the nose (beyond the feature dilation)
    assert w[c, c + 50 + 10] == 128  # 10 px outside the skin disk: inside the 20 px dilation
    assert w[c, c + 50 + 19] == 128
    assert w[c, c + 50 + 40] == 32  # 40 px outside: background
    assert w[0, 0] == 32
    assert set(w.unique().tolist()) == {32.0, 128.0, 254.0}


def test_weight_map_feature_dilation_switch() -> None:
    parts = _skin_disk_with_nose()
    c = 100
    dilated = photo_weight_map(parts, normalize=False)[0]
    assert dilated[c, c + 5 + 10] == 254 and dilated[c, c + 5 + 20] == 254 and dilated[c, c + 5 + 21] == 128
    plain = photo_weight_map(parts, normalize=False, dilate_features=False)[0]
    assert plain[c, c + 5] == 254 and plain[c, c + 6] == 128
    assert torch.equal(plain == 32, dilated == 32)  # the face outline dilates either way


def test_weight_map_normalisation_and_custom_weights() -> None:
    parts = _skin_disk_with_nose()
    raw = photo_weight_map(parts, normalize=False)
    normed = photo_weight_map(parts)
    assert torch.allclose(normed, raw / 254)
    assert normed.max() == 1.0
    custom = photo_weight_map(parts, dilation_px=0, feature_weight=1.0, face_weight=0.5, background_weight=0.0)
    assert torch.equal(custom[0], torch.where(parts[0] == F.NOSE, 1.0, torch.where(parts[0] == F.SKIN, 0.5, 0.0)))


def test_weight_map_treats_every_facial_feature_alike() -> None:
    parts = torch.full((1, 9, 9), int(F.SKIN))
    features = [F.LEFT_BROW, F.RIGHT_BROW, F.LEFT_EYE, F.RIGHT_EYE, F.NOSE, F.MOUTH, F.UPPER_LIP, F.LOWER_LIP]
    for i, part in enumerate(features):
        parts[0, i, 0] = part
    w = photo_weight_map(parts, dilation_px=0, normalize=False)[0]
    assert w[:8, 0].tolist() == [254.0] * 8
    assert w[8, 0] == 128 and w[0, 1] == 128


def test_config_matches_function_and_validates_fields() -> None:
    parts = _skin_disk_with_nose()
    config = WeightMapConfig(dilation_px=7, dilate_features=False)
    assert torch.equal(config.weight_map(parts), photo_weight_map(parts, 7, dilate_features=False))
    with pytest.raises(ConfigError, match="dilation_px"):
        WeightMapConfig(dilation_px=-1)
    with pytest.raises(ConfigError, match="dilation_px"):
        WeightMapConfig(dilation_px=2.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="face_weight"):
        WeightMapConfig(face_weight=float("nan"))
    with pytest.raises(ConfigError, match="background_weight"):
        WeightMapConfig(background_weight=-1.0)
    with pytest.raises(ConfigError, match="feature_weight"):
        WeightMapConfig(feature_weight=0.0, face_weight=0.0, background_weight=0.0)
    with pytest.raises(ConfigError, match="normalize"):
        WeightMapConfig(normalize=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="dilation_px"):
        photo_weight_map(parts, dilation_px=-3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.dilation_px = 3  # type: ignore[misc]


def test_weight_map_rejects_bad_parts() -> None:
    with pytest.raises(ShapeError, match="parts"):
        photo_weight_map(torch.zeros(8, 8, dtype=torch.int64))
    with pytest.raises(ShapeError, match="parts"):
        photo_weight_map(torch.full((1, 8, 8), float("nan")))
    with pytest.raises(ShapeError, match="parts"):
        photo_weight_map(torch.full((1, 8, 8), 12))


@pytest.mark.parametrize("radius", [0, 1, 3, 20])
def test_dilate_mask_matches_opencv_square_dilation(radius: int) -> None:
    rng = np.random.default_rng(radius)
    mask = rng.random((2, 40, 50)) > 0.995
    got = dilate_mask(torch.from_numpy(mask), radius).numpy()
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    expected = np.stack([cv2.dilate(m.astype(np.uint8), kernel, borderValue=0).astype(bool) for m in mask])
    np.testing.assert_array_equal(got, expected)
