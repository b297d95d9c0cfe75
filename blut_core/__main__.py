from blut_core.cli import main

main()
