"""Exported denoising models; installed as the package data ``seproc.models``."""
