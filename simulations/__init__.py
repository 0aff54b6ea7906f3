"""Discrete-event city simulations driving the production dispatch code."""
