"""Training, corpus building, export and evaluation of seproc models (not shipped in the wheel)."""
