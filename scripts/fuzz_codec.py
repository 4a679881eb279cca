"""Fuzz the .dic decoder: decode seeded mutated files (whole-file damage, rANS strings damaged with
consistent CRCs, crafted headers with valid CRCs) in worker processes and print how each class
ended; exit 1 when a case decoded to a wrong image or crashed. The campaign is test tooling
(tests/fuzzing/); tests/test_fuzz_codec.py runs a short one.

    python scripts/fuzz_codec.py --cases 10000
"""
import argparse
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzzing.campaign import TITLES, run_campaign, table  # noqa: E402


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run a campaign, print the table (and examples of any bad outcome)."""
    parser = argparse.ArgumentParser(description="Fuzz the .dic decoder with seeded mutated files.")
    parser.add_argument("--cases", type=int, default=10000, help="number of mutated files (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="decoding processes (default 2)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds a case may take before it counts as a hang")
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the subject checkpoint (default: a temporary one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        report = run_campaign(args.cases, folder, args.seed, args.workers, args.timeout, progress=500)
    print(table(report))
    print(f"\n{sum(map(sum, (r.values() for r in report.counts.values())))} cases in {report.seconds:.0f} s, "
          f"seed {args.seed}, {args.workers} worker(s), {report.restarts} worker restart(s)")
    for (klass, outcome), found in sorted(report.examples.items()):
        if outcome in ("wrong", "crash"):
            print(f"\n{TITLES[klass]} — {outcome}:\n  " + "\n  ".join(found))
    return 1 if report.total("wrong") or report.total("crash") else 0


if __name__ == "__main__":
    sys.exit(main())
