"""The papers' datasets behind one factory, their class lists and published results as data.

>>> ds = load_dataset("cifar10", "~/data", download=True)   # doctest: +SKIP
>>> ds = load_dataset("imagenet10", "/data/imagenet")       # doctest: +SKIP  (local copy)
>>> ds = load_dataset("synthetic", "/tmp/kec-data")          # doctest: +SKIP  (generated)
>>> ds.class_names, ds.targets, ds.load_image(0)            # doctest: +SKIP

``list_datasets()`` names them all; ``dataset_info(name)["needs"]`` says what a machine
needs to load each one. Nothing is ever downloaded unless ``download=True``.
"""

from kec.datasets.base import DatasetError, ImageDataset, concat_datasets
from kec.datasets.embed import embed_dataset, save_dataset_features
from kec.datasets.factory import load_dataset
from kec.datasets.published import published_results, published_sources
from kec.datasets.registry import (
    available_datasets,
    cifar100_fine_to_coarse,
    class_list,
    dataset_info,
    list_datasets,
    resolve_name,
)
from kec.datasets.synthetic import generate_synthetic, synthetic_class_names

__all__ = [
    "DatasetError",
    "ImageDataset",
    "available_datasets",
    "cifar100_fine_to_coarse",
    "class_list",
    "concat_datasets",
    "dataset_info",
    "embed_dataset",
    "generate_synthetic",
    "list_datasets",
    "load_dataset",
    "published_results",
    "published_sources",
    "resolve_name",
    "save_dataset_features",
    "synthetic_class_names",
]
