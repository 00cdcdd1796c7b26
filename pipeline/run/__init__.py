"""Running the matrix: the runner over revisions, one cell per vCPU count, the verdicts."""
