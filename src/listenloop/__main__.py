from listenloop.cli import main

main()
