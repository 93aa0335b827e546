"""The pytest plugin of hf-relrep under its package name, for ``-p hf_relrep.testing.plugin`` or
``pytest_plugins = ["hf_relrep.testing.plugin"]`` where plugin autoloading is disabled: the ``local_hub_environment``
and ``local_hub`` fixtures.

They are defined in the top-level module ``_hf_relrep_pytestplugin``, the ``pytest11`` entry point that pytest loads
in every session of an environment where hf-relrep is installed: it imports nothing of hf-relrep until a fixture runs.
"""

from _hf_relrep_pytestplugin import local_hub, local_hub_environment


__all__ = ["local_hub", "local_hub_environment"]
