"""The data-set registry: ``@register_dataset("name")`` makes a class an option file's ``name``."""
from ..registry import Registry

DATASETS = Registry("dataset")
register_dataset = DATASETS.register
