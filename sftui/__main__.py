"""The `sftui` command (and `python -m sftui`). Ctrl+C is held from its first line until the command is known
(sampler.run.interrupts): imports and the command-line library cannot take a KeyboardInterrupt safely."""

from sampler.run import interrupts


def main() -> None:
    interrupts.hold()
    from sftui.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
