import sys

from bootstrap.agents.kubelet import main

sys.exit(main())
