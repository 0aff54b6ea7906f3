"""Entry points that sit on top of every other package: the `daojia` command line.

Layers (arrows point to what a package may import):
``geo`` ← ``dispatch`` ← ``api`` / ``simulations`` ← ``daojia`` (this CLI) and ``benchmarks``.
Importing this package costs nothing: each command imports what it runs when it runs.
"""
