# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names that reach commands, paths, and nft or restore text: each a fully anchored pattern.

Python's ``$`` also matches before a trailing newline, so every check here is a
``fullmatch``: ``"lab\\n"`` is not a lab name. The scenario schema states the same
patterns (a unit test holds them equal).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError, shown

# kind -> (pattern, what the user is told)
_RULES = {
    'lab': (r'[a-z0-9][a-z0-9-]{0,31}', "1-32 of a-z, 0-9 and '-', starting with a letter or digit"),
    'role': (r'[a-z][a-z0-9]{0,9}', '1-10 of a-z and 0-9, starting with a letter'),
    'netns': (r'[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}',
              "the name of a namespace in /run/netns: 1-64 of letters, digits, '_', '.' and '-', not starting "
              "with '.' (never a path)"),
    'ifname': (r'[A-Za-z0-9_][A-Za-z0-9_.+@-]{0,14}',
               "an interface name: 1-15 of letters, digits, '_', '.', '+', '@' and '-', not starting with '.'"),
    'xt_chain': (r'[A-Za-z0-9_][A-Za-z0-9_.+-]{0,27}', "1-28 of letters, digits, '_', '.', '+' and '-'"),
    'nft_name': (r'[A-Za-z_][A-Za-z0-9_.-]{0,254}',
                 "1-255 of letters, digits, '_', '.' and '-', starting with a letter or '_'"),
    'scenario_id': (r'[a-z0-9][a-z0-9-]{0,63}', "1-64 of a-z, 0-9 and '-'"),
    'mark': (r'[a-z][a-z0-9-]{0,28}', "1-29 of a-z, 0-9 and '-', starting with a letter"),
    'run_id': (r'[A-Za-z0-9][A-Za-z0-9._-]{0,99}', "1-100 of letters, digits, '.', '_' and '-'"),
}
PATTERNS = dict((kind, rule[0]) for kind, rule in _RULES.items())
_COMPILED = dict((kind, re.compile(pattern)) for kind, pattern in PATTERNS.items())


class InvalidName(PflabError):
    pass


def valid(kind, value):
    return isinstance(value, str) and _COMPILED[kind].fullmatch(value) is not None


def check(kind, value, what=None):
    """``value`` when it is a valid ``kind``, else InvalidName naming ``what``."""
    if not valid(kind, value):
        raise InvalidName('%s %s is invalid: use %s' % (what or kind, shown(value), _RULES[kind][1]))
    return value
