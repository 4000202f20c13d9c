"""Generates the gRPC stubs from ../../proto when the package is built (pip install clients/python)."""

import os
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class BuildWithStubs(build_py):
    def run(self):
        from moeserve_client import _stubs

        _stubs.generate(_stubs.PACKAGE_GENERATED_DIR)
        super().run()
        # Ship the generated tree inside the package.
        target = os.path.join(self.build_lib, "moeserve_client", "_generated")
        self.copy_tree(_stubs.PACKAGE_GENERATED_DIR, target)


setup(cmdclass={"build_py": BuildWithStubs})
