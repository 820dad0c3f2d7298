"""canary signal source (see DESIGN.md)."""
