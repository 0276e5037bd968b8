"""Build script: everything is in setup.cfg except the optional C helper of the live fan-out.

`starcite._fanout` (starcite/native/fanout.c) is optional: where it does not
build (no compiler, e.g. the slim container image's build stage), Starcite
installs without it and `starcite.api.tails.live_fanout` sends on the worker's
thread instead (same behaviour, one core for the fan-out).
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("starcite._fanout", ["starcite/native/fanout.c"], optional=True)])
