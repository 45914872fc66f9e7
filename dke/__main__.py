from dke.cli import main

main()
