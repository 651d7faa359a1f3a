"""catsdogs: the helper package of the Linformer-ViT cats-vs-dogs tutorial. The notebooks write the
lesson's code (split, model, training, test-time augmentation, the submission), and the modules they export
are generated from them (``split``, ``model``, ``training``, ``submission``); everything else here is
plumbing. Importing the package imports nothing else: import what you need from its module."""

__version__ = "0.1.0"
