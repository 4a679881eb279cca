"""Fuzz the .dic decoder: decode seeded mutated files (whole-file damage, rANS strings damaged with
consistent CRCs, crafted headers with valid CRCs) in worker processes and print how each class
ended. The campaign lives in dic.codec.fuzz; tests/test_fuzz_codec.py runs a short one.

    python scripts/fuzz_codec.py --cases 10000
"""
import sys

from dic.codec.fuzz import main

if __name__ == "__main__":
    sys.exit(main())
