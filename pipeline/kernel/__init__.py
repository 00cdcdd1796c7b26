"""The kernel stage: its config (fragments on a base, checked option by option), and why an
option did not stick."""
