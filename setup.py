"""Only what pyproject.toml cannot say: ship ``gpuprof_autostart.pth`` at the top of
site-packages, where Python's ``site`` module runs it at every start-up (the hook behind
``GPUPROF_OUTPUT_PATH``; it does nothing unless the variable is set).

A wheel puts every file of the build folder's root into site-packages, so the build step
copies the hook there. Editable installs (``pip install -e``) do not ship the build folder;
``tools/setup.sh`` installs the hook for them, and ``gpuprof run`` says so when it is missing.
"""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

HOOK = "gpuprof_autostart.pth"


class BuildPyWithHook(build_py):
    def run(self):
        super().run()
        self.copy_file(os.path.join("gpuprof", HOOK), os.path.join(self.build_lib, HOOK),
                       preserve_mode=0)


setup(cmdclass={"build_py": BuildPyWithHook})
