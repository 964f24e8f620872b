"""Log format shared by every process: every line carries the correlation id."""
FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(correlation_id)s] %(message)s"
