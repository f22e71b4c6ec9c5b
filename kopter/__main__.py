from kopter.cli import main

main()
