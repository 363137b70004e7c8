"""Software meters (the slave role of the ``protocols`` codecs) on byte-timed RS-485 buses."""
