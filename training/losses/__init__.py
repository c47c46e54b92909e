"""DF-MVR's training losses (paper section IV, eq. 2-8) as pure, batched, differentiable functions.

Each term returns a per-sample ``(B,)`` loss; :func:`total_loss` weights and sums them with a
:class:`LossWeights` (presets :data:`PAPER_WEIGHTS`, :data:`AUTHORS_CODE_WEIGHTS`, :func:`load_loss_weights`).

=================================  ======  =============================================================
term                               eq.     function
=================================  ======  =============================================================
photo (weighted RGB distance)      2       :func:`photo_loss`
mask (parse of the rendering)      3       :func:`mask_loss`, :func:`parse_rendered_views`
2D landmarks                       4       :func:`landmark_2d_loss`, :func:`landmark_2d_weights`
3D landmarks after alignment       5-6     :func:`landmark_3d_loss`
coefficient regularisation         8       :func:`regularization_loss`
authors' extra priors              --      :func:`lighting_regularization_loss`, :func:`reflectance_loss`
dense vertex error (synthetic GT)  --      :func:`vertex_loss` (UH-E2FAR-style 3D supervision, not DF-MVR's)
overall loss                       IV-E    :func:`total_loss`
=================================  ======  =============================================================

Baselines: Deep3DFace's hybrid loss (:mod:`.deep3dface`: skin-attention photo, squared landmarks, perception, texture
variance; :class:`Deep3DFaceLossWeights`) and UH-E2FAR's neutral / expressive shape losses (:mod:`.uh_e2far`,
:class:`UHE2FARLossWeights`).
"""

from .deep3dface import (
    DEEP3DFACE_WEIGHTS,
    Deep3DFaceLossWeights,
    SkinColorModel,
    landmark_squared_loss,
    load_deep3dface_loss_weights,
    load_embedder,
    perception_loss,
    skin_attention,
    skin_photo_loss,
    texture_variance_loss,
)
from .landmarks import (
    IBUG68_ALIGN_INDICES,
    INNER_MOUTH_INDICES,
    LANDMARK_2D_SCHEMES,
    NOSE_INDICES,
    PIXEL_FACE_101_ALIGN_INDICES,
    landmark_2d_loss,
    landmark_2d_weights,
    landmark_3d_loss,
)
from .mask import celeba_logits_to_part_log_probs, mask_loss, parse_rendered_views
from .photo import photo_loss
from .regularization import (
    PAPER_REGULARIZATION_WEIGHTS,
    lighting_regularization_loss,
    reflectance_loss,
    regularization_loss,
)
from .total import total_loss
from .uh_e2far import (
    UH_E2FAR_WEIGHTS,
    UHE2FARLossWeights,
    expressive_shape_loss,
    load_uh_e2far_loss_weights,
    neutral_shape_loss,
)
from .vertices import vertex_loss
from .weights import (
    AUTHORS_CODE_WEIGHTS,
    PAPER_WEIGHTS,
    PRESETS,
    TERM_NAMES,
    LossWeights,
    ablation_loss_weights,
    load_loss_weights,
)

__all__ = [
    "AUTHORS_CODE_WEIGHTS",
    "DEEP3DFACE_WEIGHTS",
    "IBUG68_ALIGN_INDICES",
    "INNER_MOUTH_INDICES",
    "LANDMARK_2D_SCHEMES",
    "NOSE_INDICES",
    "PAPER_REGULARIZATION_WEIGHTS",
    "PAPER_WEIGHTS",
    "PIXEL_FACE_101_ALIGN_INDICES",
    "PRESETS",
    "TERM_NAMES",
    "UH_E2FAR_WEIGHTS",
    "Deep3DFaceLossWeights",
    "LossWeights",
    "SkinColorModel",
    "UHE2FARLossWeights",
    "ablation_loss_weights",
    "celeba_logits_to_part_log_probs",
    "expressive_shape_loss",
    "landmark_2d_loss",
    "landmark_2d_weights",
    "landmark_3d_loss",
    "landmark_squared_loss",
    "lighting_regularization_loss",
    "load_deep3dface_loss_weights",
    "load_embedder",
    "load_loss_weights",
    "load_uh_e2far_loss_weights",
    "mask_loss",
    "neutral_shape_loss",
    "parse_rendered_views",
    "perception_loss",
    "photo_loss",
    "reflectance_loss",
    "regularization_loss",
    "skin_attention",
    "skin_photo_loss",
    "texture_variance_loss",
    "total_loss",
    "vertex_loss",
]
