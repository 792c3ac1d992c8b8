# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs commands (argv lists, never a shell) for the engines.

Built on ``subprocess.run``, not AnsibleModule.run_command: run_command turns any
exception raised while a command runs (a scenario's timeout, SIGTERM, a tool that
closes its stdin early on a large input) into "Error executing command." and
exits, before the caller's cleanup can say what happened. Here the command is
killed and the exception goes on to the caller; a command that runs too long is
killed and named.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import subprocess

from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError

TIMEOUT = 60.0


class CommandError(PflabError):
    pass


def run(argv, data=None, timeout=TIMEOUT):
    """Run ``argv`` with ``data`` (text or bytes) on stdin; return (rc, stdout, stderr) as text.

    A command killed by a signal has rc -N, as subprocess gives it.
    """
    try:
        done = subprocess.run(argv, input=to_bytes(data) if data is not None else None,  # pylint: disable=ansible-bad-function
                              stdin=None if data is not None else subprocess.DEVNULL,
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise CommandError('%s did not finish within %gs and was killed' % (argv[0], timeout))
    except OSError as e:
        raise CommandError('cannot run %s: %s' % (argv[0], e.strerror or e))
    return done.returncode, to_text(done.stdout, errors='surrogate_or_replace'), \
        to_text(done.stderr, errors='surrogate_or_replace')
