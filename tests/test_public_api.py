"""The public surface: every typed error and the documented entry points are importable from `hf_relrep`."""

import inspect

import hf_relrep
from hf_relrep import errors


def test_every_typed_error_is_exported_and_a_relrep_error():
    typed = {name for name, value in vars(errors).items() if inspect.isclass(value) and issubclass(value, Exception)}
    assert typed <= set(hf_relrep.__all__), f"not exported: {sorted(typed - set(hf_relrep.__all__))}"
    for name in typed:
        assert issubclass(getattr(hf_relrep, name), errors.RelRepError)


def test_everything_in_all_resolves():
    for name in hf_relrep.__all__:
        assert getattr(hf_relrep, name) is not None, name


def test_one_version_from_the_package_metadata():
    from importlib.metadata import version

    assert hf_relrep.__version__ == version("hf-relrep")
