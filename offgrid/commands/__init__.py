"""The bodies of `offgrid` subcommands that do more than start the server."""
