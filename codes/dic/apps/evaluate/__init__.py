"""Evaluation: ``python test.py -opt conf/test/x.yml``, ``dic-test`` or ``dic test``
(:func:`.runner.run`); the sequential baselines; rate–distortion reports, plots and BD-rate.
The package imports nothing, so ``dic bdrate`` / ``dic plot`` load :mod:`.rd` without torch and
the option schema can read :data:`.protocol.PROTOCOLS`."""
