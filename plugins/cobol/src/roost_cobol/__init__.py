"""Roost's COBOL plugin: CreateProgram, CallJob and SubmitJob on an IBM i or GnuCOBOL host over SSH."""
