"""Training data: the synthetic multi-view face dataset (writer and reader) and its shard files."""

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

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "SPLIT_STREAMS",
    "DatasetSummary",
    "SyntheticMultiViewDataset",
    "generate_samples",
    "gt_vertices",
    "make_dataset",
    "model_content_hash",
]
