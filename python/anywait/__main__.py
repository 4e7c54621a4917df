"""``python -m anywait``: an interactive prompt where lines may ``await`` and sync code
may ``anywait.await_``, on one persistent loop (see ``anywait._repl``)."""

import sys

from anywait._repl import main

sys.exit(main())
