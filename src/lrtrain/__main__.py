from lrtrain.entry import main

main(leave=False)  # runpy's caller may go on in this process: the ordinary exit
