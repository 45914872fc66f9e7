from dke.cli import entry

entry()
