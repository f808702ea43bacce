"""`python -m mapper.cli`: the same as the `wlmap` command (for when the script is not on the PATH)."""

from mapper.cli.main import main

main()
