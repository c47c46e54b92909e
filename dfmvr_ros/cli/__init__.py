"""Command-line subcommands of dfmvr_ros that run without ROS (registered under ``dfmvr.commands``)."""
