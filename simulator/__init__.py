"""Twilio REST API simulator for Recording Cache's tests, benchmarks and demo."""

from simulator.app import create_app
from simulator.callbacks import place_call, post_callback, sign

__all__ = ["create_app", "place_call", "post_callback", "sign"]
