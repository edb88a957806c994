import sys

from bootstrap.agents.proxy import main

sys.exit(main())
