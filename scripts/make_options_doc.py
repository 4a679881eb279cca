"""Regenerate docs/options.md from the option schema in dic.config."""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "codes"))

from dic.config import describe  # noqa: E402

HEADER = """# Option keys

Every key an option file may hold, with its type and default (`null`: none). Generated from
the schema (`dic.config.schema`) and the models' constructors by
`python scripts/make_options_doc.py`; a test keeps it in step.

- Relative paths resolve against `path.root`; by default that is the project root, the folder
  holding the `conf/` folder the option file sits in (else the option file's own folder).
  The shell's current directory never matters.
- Any key can be overridden on the command line: `--set train.epoch.value=2 datasets.train.batch_size=4`
  (values are read as YAML).
- Keys under `network` other than those listed are the model's hyper-parameters (`N`,
  `num_layers`, ...): see *Model hyper-parameters* below and `dic list models`.
- Nothing is ignored: a key the schema, the model or the data set does not take is an error
  naming the file (or `--set`) and the key. A `datasets` key marked *(data sets: ...)* is taken
  only by those data sets; `level` on `sidd` or `folder`, for instance, is refused.
- Outputs: `experiments/<name>/` (options.yml, train.log, checkpoints/, val_samples/),
  `tb_logger/<name>/`, `results/<name>/`, all under `path.root`.

"""


def main() -> None:
    out = Path(__file__).resolve().parents[1] / "docs" / "options.md"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text(HEADER + describe())
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
