"""Time: may the gateway trust its own clock (``trust``); the meters' time sync (``sync``)."""
