from datafactory.cli import main

main()
