"""Let ansible-test sanity bootstrap pip without its download host.

ansible-test fetches get-pip.py from a host this network does not reach, unless
~/.ansible/test/cache/get_pip_<version>.py exists. This writes a stand-in
there that brings pip with ensurepip (in a subprocess, since ensurepip must not
run inside ansible-test's own pip wrapper) and then installs the pinned pip
from the package index.
"""

import os
import sys
import types

from ansible_test._internal.python_requirements import get_venv_packages

STAND_IN = '''\
import subprocess
import sys

GET_PIP_ONLY = ('--no-setuptools', '--no-wheel')
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'])
args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--upgrade'] + args)
'''


def main():
    version = get_venv_packages(types.SimpleNamespace(version='%d.%d' % sys.version_info[:2]))['pip']
    path = os.path.expanduser('~/.ansible/test/cache/get_pip_%s.py' % version.replace('.', '_'))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(STAND_IN)


if __name__ == '__main__':
    main()
