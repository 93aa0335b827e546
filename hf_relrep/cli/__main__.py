"""``python -m hf_relrep.cli``: the ``hf-relrep`` command line."""

from . import main


raise SystemExit(main())
