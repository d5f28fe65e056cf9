"""`python -m sftui`: the same command line as the `sftui` script."""

from sftui.cli import main

if __name__ == "__main__":
    main()
