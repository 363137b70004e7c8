"""One worker per RS-485 bus: timing, the job queue and the transaction loop."""
