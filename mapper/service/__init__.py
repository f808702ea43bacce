"""The running service: options, listener, durable store, workers, operator actions, metrics."""
