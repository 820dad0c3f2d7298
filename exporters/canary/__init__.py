"""Canary round trips: send signed mails through real paths, find them where they must
land, verify what arrived, and say where a missing one stopped (docs/canary.md)."""
