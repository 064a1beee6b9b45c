"""Runs after launch: the record registry, launching, the supervisor, the queue, liveness and status rows."""
