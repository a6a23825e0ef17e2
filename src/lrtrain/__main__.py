from lrtrain.cli import main

main()
