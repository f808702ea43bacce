"""`python -m mapper.service.server`: the service's own command line (see `server.main`)."""

from mapper.service.server import main

main()
