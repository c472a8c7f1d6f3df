from stockdata.cli import main

main()
