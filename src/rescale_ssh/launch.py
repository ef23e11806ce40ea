"""The launcher's old place, named by configs that earlier versions wrote.

Until ``install`` is run again, their hook script, ``hook.conf`` and ``ssh.conf`` start
``python -I -S .../rescale_ssh/launch.py``: this runs the launcher of ``hook/launch.py``.
"""

import os
import sys

if __name__ == "__main__":
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    from rescale_ssh.hook.launch import start

    start()
