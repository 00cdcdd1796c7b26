"""kpv: kernel patch validation pipeline."""
