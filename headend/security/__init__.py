"""Head-end security tooling: command-signing keys (``keys``), gateway enrolment (``enrol``,
``ca``) and their ``taiqu headend`` sub-commands (``cli``).  See docs/security.md."""
