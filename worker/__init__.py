"""Recording Cache domain: configuration, storage, Twilio access and tasks.

Nothing in this package imports from ``web``; the web tier is a thin layer on
top of it.
"""
