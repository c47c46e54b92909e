"""Training data: the synthetic multi-view face dataset (writer and reader), folders of real camera triplets and
the public datasets' layouts (Pixel-Face, Multi-PIE, CelebAMask-HQ)."""

from dfmvr_training.data.layouts import CelebAMaskHQDataset, MultiPIEDataset, PixelFaceDataset
from dfmvr_training.data.synthetic import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    SPLIT_STREAMS,
    DatasetSummary,
    SyntheticMultiViewDataset,
    generate_samples,
    gt_vertices,
    make_dataset,
    model_content_hash,
)
from dfmvr_training.data.triplets import (
    ApproximateIntrinsics,
    FolderTripletDataset,
    ImageTripletDataset,
    TripletRecord,
    read_camera_info_yaml,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "SPLIT_STREAMS",
    "ApproximateIntrinsics",
    "CelebAMaskHQDataset",
    "DatasetSummary",
    "FolderTripletDataset",
    "ImageTripletDataset",
    "MultiPIEDataset",
    "PixelFaceDataset",
    "SyntheticMultiViewDataset",
    "TripletRecord",
    "generate_samples",
    "gt_vertices",
    "make_dataset",
    "model_content_hash",
    "read_camera_info_yaml",
]
