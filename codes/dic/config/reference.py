"""The option reference, generated: every schema key with its type, default and meaning; which
data sets take each ``datasets`` key; every model hyper-parameter with its type, allowed values
and meaning (``docs/options.md``, written by ``scripts/make_options_doc.py``)."""
from __future__ import annotations

from typing import Any, List, Mapping

import yaml

from ..models import MODELS, hparam_specs
from .schema import PHASE_KEYS, SCHEMA, Each, datasets_taking


def _value(value: Any) -> str:
    """A default as the option file would spell it."""
    return f"`{yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}`"


def _schema_rows(schema: Mapping, prefix: str, rows: List[str]) -> None:
    for key, spec in schema.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(spec, Each):
            _schema_rows(spec, f"{dotted}.<phase>", rows)
        elif isinstance(spec, Mapping):
            _schema_rows(spec, dotted, rows)
        else:
            default = "required" if spec.required else _value(spec.default)
            doc = spec.doc
            if prefix.startswith("datasets.") and key not in PHASE_KEYS:
                doc += f" (data sets: {', '.join(datasets_taking(key))})"
            rows.append(f"| `{dotted}` | {spec.expected} | {default} | {doc} |")


def describe_schema() -> str:
    """Every option key, its type, default and meaning, as a Markdown table."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    _schema_rows(SCHEMA, "", rows)
    return "\n".join(rows) + "\n"


def describe_models() -> str:
    """The hyper-parameters each registered model takes under ``network``, as a Markdown table."""
    rows = ["| model | key | type | default | meaning |", "|---|---|---|---|---|"]
    for name in MODELS.names():
        for key, spec in hparam_specs(name).items():
            if key != "quality":  # network.quality is a schema key
                doc = spec.doc.replace("``", "`")  # reST literals → Markdown
                rows.append(f"| `{name}` | `network.{key}` | {spec.expected} | {_value(spec.default)} | {doc} |")
    return "\n".join(rows) + "\n"


def describe() -> str:
    """docs/options.md's tables: the schema's keys, then the models' hyper-parameters."""
    return (describe_schema() + "\n## Model hyper-parameters\n\nKeys under `network` beyond the table above, "
            "per model (`dic list models`); null: chosen from `quality`.\n\n" + describe_models())
