from tickmesh.cli import main

main()
