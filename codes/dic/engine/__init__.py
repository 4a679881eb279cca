"""Training (``train``), evaluation (``evaluate``), rate–distortion reports (``rd``) and benchmarks.

Modules are imported on demand by the command-line entry points, so importing ``dic.engine``
stays cheap."""
