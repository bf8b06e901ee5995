from korlhf.cli import main

main()
