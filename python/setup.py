"""Builds the package: pure Python (ctypes) plus, inside the saliency source tree, a copy of the
shared library that `make shared` builds there, so the installed package needs nothing else.

SALIENCY_BUILD names the build folder (default build); SALIENCY_LIB=FILE bundles that file instead
of running make; SALIENCY_BUNDLE=0 bundles no library (the package then loads the installed
libsaliency.so.0: make install, or the Debian package)."""
import os
import shutil
import subprocess

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SONAME = "libsaliency.so.0"


class BuildPyWithLibrary(build_py):
    def run(self):
        super().run()
        in_tree = os.path.exists(os.path.join(ROOT, "Makefile")) and os.path.exists(
            os.path.join(ROOT, "include", "saliency.h"))
        given = os.environ.get("SALIENCY_LIB")
        if given:  # a library built elsewhere (or by another make invocation)
            shutil.copyfile(given, os.path.join(self.build_lib, "saliency", SONAME))
            return
        if os.environ.get("SALIENCY_BUNDLE", "1") == "0" or not in_tree:
            return
        build = os.environ.get("SALIENCY_BUILD", "build")
        subprocess.check_call(["make", "-C", ROOT, "--no-print-directory", "-s", "BUILD=" + build, "shared"])
        lib = os.path.join(ROOT, build, SONAME)
        if not os.path.exists(lib):  # make shared names the file by version; the soname link is install's
            libs = [f for f in os.listdir(os.path.join(ROOT, build)) if f.startswith(SONAME)]
            lib = os.path.join(ROOT, build, sorted(libs)[-1])
        shutil.copyfile(lib, os.path.join(self.build_lib, "saliency", SONAME))


class BinaryDistribution(Distribution):
    def has_ext_modules(self):  # the bundled library makes the wheel platform-specific
        return True


setup(cmdclass={"build_py": BuildPyWithLibrary}, distclass=BinaryDistribution)
