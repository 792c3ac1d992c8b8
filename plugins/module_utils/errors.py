# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one base error of the collection's engines, and how values appear in messages.

Every engine raises a subclass of PflabError with a message that says what failed,
where (file and field, step, rule) and what state the target is in; modules catch
this one class. Values given by users are quoted with ``shown``: short, and never
more than a fragment of what was given.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

SHOWN_MAX = 60
CLIP_MAX = 2000


class PflabError(Exception):
    pass


def shown(value, limit=SHOWN_MAX):
    """``repr(value)``, cut to ``limit`` characters with the full length said."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = len(value) if hasattr(value, '__len__') else len(text)
    return '%s... (%d %s)' % (text[:limit], size, 'characters' if isinstance(value, (str, bytes)) else 'items')


def clip(text, limit=CLIP_MAX):
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    text = '%s' % text
    if len(text) <= limit:
        return text
    return '%s... (%d more characters)' % (text[:limit], len(text) - limit)
