# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Where the rule modules work: a namespace, or the host's own only when asked.
    DOCUMENTATION = r'''
options:
  netns:
    description:
      - Name of the network namespace to work in, as in C(/run/netns) (C(ip netns list)), for example one of a lab
        made by M(pflab.netfilter.netns_lab). A path, a symlink, a name bound to the host's own namespace, and a
        namespace of a scenario that another process is running are refused.
      - Required unless O(host=true).
    type: str
  host:
    description:
      - Work in the host's own (initial) network namespace instead of O(netns).
      - An explicit opt-in, so that a task that forgets O(netns) fails instead of changing the host's firewall.
    type: bool
    default: false
    version_added: 0.4.0
'''
