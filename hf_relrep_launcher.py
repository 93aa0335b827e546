"""The ``hf-relrep`` console script: the command line, started without the model registration of ``import hf_relrep``.

``import hf_relrep`` registers the model types with the transformers Auto classes, which imports torch and
transformers: seconds, where printing a usage text should be instant. The console script imports this module first;
the package sees it in `sys.modules` and leaves the registration to the first command that loads a model
(`hf_relrep.modeling` registers the model types when it is imported). ``python -m hf_relrep.cli`` runs the same
command line after a plain ``import hf_relrep``.
"""

import sys


def main() -> int:
    """Run the ``hf-relrep`` command line (`hf_relrep.cli.main`) on ``sys.argv``; returns its exit status."""
    from hf_relrep.cli import main as cli_main  # after this module is in sys.modules: see the module docstring

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
