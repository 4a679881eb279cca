"""Model checkpoints: our file format (:mod:`.io`), official-release conversion
(:mod:`.official`), loading either (:mod:`.loading`) and the warm start from CompressAI's
Cheng2020-anchor weights (:mod:`.pretrained`). Depends on :mod:`dic.models`, never the reverse."""
from .io import (build_coding_tables, coding_tables, has_coding_tables, is_dic_checkpoint, load_checkpoint,
                 load_coding_tables, load_state_dict_checked, read_checkpoint_file, save_checkpoint,
                 weights_fingerprint)
from .loading import load_for_inference, load_model
from .official import model_from_official, split_official
from .pretrained import load_pretrained

__all__ = [
    "build_coding_tables", "coding_tables", "has_coding_tables", "is_dic_checkpoint", "load_checkpoint",
    "load_coding_tables", "load_for_inference", "load_model", "load_pretrained", "load_state_dict_checked",
    "model_from_official", "read_checkpoint_file", "save_checkpoint", "split_official", "weights_fingerprint",
]
