from datafactory.cli import run

if __name__ == "__main__":  # worker processes import this module again (as __mp_main__): only run it as a program
    run()
