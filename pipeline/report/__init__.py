"""Reports rendered from a finished Run: JUnit, HTML, KCIDB, comparisons."""
