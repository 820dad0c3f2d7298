"""smtp signal source (see DESIGN.md)."""
