"""``python -m daojia``: the same as the ``daojia`` console script."""

from daojia.cli import main

main()
