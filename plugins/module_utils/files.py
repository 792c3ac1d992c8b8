# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a file a user names: a regular file of UTF-8 text, of bounded size, never quoted in errors."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError


class FileError(PflabError):
    pass


def read_text(path, limit, what):
    """The text of the file at ``path``; FileError naming it as ``what`` when it is not a regular file,
    is over ``limit`` bytes, cannot be read or is not UTF-8."""
    try:
        with open(path, 'rb') as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise FileError('%s is not a regular file' % what)
            if st.st_size > limit:
                raise FileError('%s is %d bytes; at most %d' % (what, st.st_size, limit))
            data = f.read(limit + 1)
    except (IOError, OSError) as e:
        raise FileError('cannot read %s: %s' % (what, e.strerror or e))
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError:
        raise FileError('%s is not UTF-8 text' % what)
