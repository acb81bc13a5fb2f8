"""Lets the plugin's tests import ``llmspend_redis`` from this checkout when the plugin is not
installed: pytest puts the directory of a conftest outside any package on ``sys.path``."""
