"""The byok-tasks demo: a BYOK product's background work, its failures, and the on-call view.

Run it with ``make demo`` (or ``byok-tasks demo``, or ``python -m demo``) from a checkout.
"""
