from ks3sync.cli.main import main

if __name__ == "__main__":
    main()
