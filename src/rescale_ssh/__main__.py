import sys

from rescale_ssh.entry import main

sys.exit(main())
