"""Test tooling: the .dic decoder's fuzz campaign (:mod:`.campaign`) and its mutations
(:mod:`.mutations`), run briefly by tests/test_fuzz_codec.py and at length by scripts/fuzz_codec.py."""
