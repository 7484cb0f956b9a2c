"""Test and development helpers: real parts that run on loopback, with nothing to install.

Imported only by tests, the demo and ``worker.py``'s embedded default; never by the
library's core or its adapters.
"""
