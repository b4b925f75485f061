"""Shared test code, one small module per kind of thing it holds (as Optuna's ``optuna/testing``); tests import
these, never another test module (tests/test_layers.py checks it).

- ``samples``: hand-made rasters with known labels, and the logits that predict them perfectly;
- ``checkpoints``: a small untrained segmenter saved as a trial saves it;
- ``las``: a LAS file checked against the LAS 2.0 rules and read back through lasio;
- ``datasets``: dataset folders in the on-disk layout, exported from the generator or built by hand;
- ``state``: Ray experiment-state files as a save leaves them, and as a full disk cuts them;
- ``study``: the real CLI in a subprocess with its own HOME, a saved study directory, the tables' contract;
- ``tmpfs``: a real small file system that fills up and turns read-only;
- ``driver``: a background ``python -m study.run`` whose output and progress are watched (bench uses it too);
- ``report_page``: a report page read back, statically and in headless Chromium.
"""
