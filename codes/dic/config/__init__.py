"""Option files: the schema as data (:mod:`.schema`), the loader (:mod:`.options`), the generated
reference (:mod:`.reference`) and the one place that turns option values into library arguments
(:mod:`.build`). The library below knows no option key."""
from .build import build_criterion, build_dataset, build_model, expand_levels, model_kwargs
from .options import (Options, check_data_roots, load_options, named_by_set, parse_overrides, save_options,
                      validate_options, validate_section)
from .reference import describe

__all__ = ["Options", "build_criterion", "build_dataset", "build_model", "check_data_roots", "describe",
           "expand_levels", "load_options", "model_kwargs", "named_by_set", "parse_overrides", "save_options",
           "validate_options", "validate_section"]
