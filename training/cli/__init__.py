"""Command-line subcommands of dfmvr_training (registered in setup.py under ``dfmvr.commands``)."""
