from bootstrap.agents.apiserver import main

main()
