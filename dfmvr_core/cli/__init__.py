"""The ``dfmvr`` command line: ``dfmvr <subcommand>``; subcommands are registered by entry points."""
