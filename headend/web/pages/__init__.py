"""The console's routes, one module per page group; ``headend.web.router`` includes them all."""
