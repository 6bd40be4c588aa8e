"""Lets `python -m trimtab` behave like the `trimtab` console script."""

from trimtab import cli

raise SystemExit(cli.main())
