"""Datasets: readers for the standard formats, downloads with checksums, named splits."""

from pixelrnn.data.datasets import (
    LABELLED_COUNTERPARTS,
    NOMINAL_DATASETS,
    ImageDataset,
    available_datasets,
    dataset_image_spec,
    dataset_num_classes,
    load_dataset,
)
from pixelrnn.data.errors import DataFormatError, DatasetNotFoundError
from pixelrnn.data.root import DATA_ENV_VAR, resolve_data_dir

__all__ = [
    "DATA_ENV_VAR",
    "LABELLED_COUNTERPARTS",
    "NOMINAL_DATASETS",
    "DataFormatError",
    "DatasetNotFoundError",
    "ImageDataset",
    "available_datasets",
    "dataset_image_spec",
    "dataset_num_classes",
    "load_dataset",
    "resolve_data_dir",
]
