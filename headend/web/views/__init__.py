"""Read models for the console's pages, built on the same stores and scope rules as the API."""
