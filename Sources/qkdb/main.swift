import ArgumentParser
QKDB.main()
