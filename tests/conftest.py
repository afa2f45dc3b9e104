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
