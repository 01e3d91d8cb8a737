"""Making an install directory match the lock: plan, execute, cache, installs, records."""
