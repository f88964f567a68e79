from tusk.cli.main import main

main()
