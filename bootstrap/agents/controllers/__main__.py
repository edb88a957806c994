import sys

from bootstrap.agents.controllers import main

sys.exit(main())
