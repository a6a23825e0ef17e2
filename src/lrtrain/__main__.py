from lrtrain.entry import main

main()
