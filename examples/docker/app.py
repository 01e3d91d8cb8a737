"""A stand-in application: it reports the interpreter it runs on."""

import platform
import sys

print(f"app running on {platform.python_implementation()} {platform.python_version()}")
print(f"interpreter: {sys.executable}")
