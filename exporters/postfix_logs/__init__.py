"""postfix_logs signal source (see DESIGN.md)."""
