"""The applications: training, evaluation and baselines, benchmarks and the ``dic`` command.
They turn options and arguments into library calls at one boundary (:mod:`dic.config.build`
and the parsers) and own the runtime plumbing (:mod:`.runtime`). Nothing in the library imports
this package (docs/architecture.md)."""
