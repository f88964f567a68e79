from tusk.cli.entry import run

run()
