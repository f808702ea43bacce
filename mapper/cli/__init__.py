"""The `wlmap` command line (typer): reads arguments and the environment, calls the layers below; nothing imports it."""
