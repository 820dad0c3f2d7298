"""dmarc signal source (see DESIGN.md)."""
