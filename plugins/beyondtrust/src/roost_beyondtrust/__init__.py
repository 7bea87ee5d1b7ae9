"""Roost plugin: a secret backend reading BeyondTrust Password Safe (managed accounts, Secrets Safe)."""
