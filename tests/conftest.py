# Shared pytest setup for the lichen test suite.
# Strategy: make `import lichen` work straight from the source tree (src
# layout) even when the package is not installed, e.g. when a module's tests
# run in a scratch venv without the compiled _ev extension.  An installed
# (editable) lichen resolves to the same directory, so this is harmless.
import os
import sys

_SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
if os.path.isdir(_SRC) and _SRC not in sys.path:
    sys.path.insert(0, _SRC)

# Tests send SIGINT (Ctrl-C) to scripts they start and expect a
# KeyboardInterrupt there. A suite started with SIGINT ignored (under nohup,
# or with `&` from a script) would pass that on: an ignored signal stays
# ignored across exec, and Python then installs no handler. A handler here
# is reset to the default at exec instead.
import signal  # noqa: E402

if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
