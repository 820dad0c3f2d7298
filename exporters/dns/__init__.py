"""dns signal source (see DESIGN.md)."""
