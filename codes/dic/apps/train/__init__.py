"""Training: ``python train.py -opt conf/train/x.yml``, ``dic-train`` or ``dic train``
(:func:`.loop.run`; :func:`.loop.fit` runs a validated option tree). The package imports
nothing, so the option schema can read the choice lists of :mod:`.step` and :mod:`.schedule`."""
