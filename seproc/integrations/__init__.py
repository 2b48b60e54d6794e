"""Integrations of seproc with other audio libraries, each behind its own extra."""
