"""Helpers every part of the package shares: atomic file replacement, bounded
YAML with line numbers, the project's pytest ini file. No pytest, no rafael domain
code.
"""
