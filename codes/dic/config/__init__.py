"""Option files: the schema and loader (:mod:`.options`) and the one place that turns option
values into library arguments (:mod:`.build`). The library below knows no YAML key."""
from .options import (Options, check_data_roots, describe, load_options, model_kwargs, parse_overrides,
                      save_options, validate_options)

__all__ = ["Options", "check_data_roots", "describe", "load_options", "model_kwargs", "parse_overrides",
           "save_options", "validate_options"]
