"""A local stand-in for Colab's ``google.colab`` package, for tests of the Colab code paths.

Only what the project calls: ``userdata.get`` (secrets), ``drive.mount`` and ``files.upload``. Tests
fill ``userdata.SECRETS`` and ``files.UPLOADS``; ``drive.mount`` makes the folder Drive would show.
"""
