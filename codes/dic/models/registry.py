"""The model registry: ``@register_model("name")`` makes a class buildable by ``create_model``."""
from ..registry import Registry

MODELS = Registry("model")
register_model = MODELS.register
