import sys

from bootstrap.agents.dns import main

sys.exit(main())
