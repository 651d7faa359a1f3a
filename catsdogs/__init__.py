"""catsdogs: the helper package of the Linformer-ViT cats-vs-dogs tutorial.

The notebooks write the lesson's code (split, model, training, test-time augmentation and the
submission); the modules they export are generated from them (``split``, ``model``, ``training``,
``submission``). Everything else here is plumbing: download and archives, the decode-once cache,
checkpoints, device and precision, metrics, plots, the ``predict`` command and the headless runner.
Importing the package imports nothing else: import what you need from its module.
"""

__version__ = "0.1.0"
