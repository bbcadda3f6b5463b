"""The ``datafactory`` program: its console script and ``python -m datafactory`` both call ``run``.

This module imports nothing at its top. Worker processes import the program's main module again (multiprocessing's
forkserver imports it once, before it forks them): with the CLI there (typer, rich) the forkserver forked the first
worker later and every worker carried the CLI (a cold build of 10k NIKL files with the console script: 1.98 ->
1.90 s, medians of 7)."""


def run() -> None:
    from datafactory.cli import run as program

    program()


if __name__ == "__main__":  # worker processes import this module again (as __mp_main__): only run it as a program
    run()
