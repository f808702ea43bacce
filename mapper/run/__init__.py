"""One run: Plan + Event → RunResult, through the clients, with a masked trace of everything sent and received."""
