# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # A host's preparation (module_utils/host.py PREPARE_SPEC): host_prepare, and the suite, which prepares its host.
    DOCUMENTATION = r'''
options:
  min_kernel:
    description: Oldest kernel version accepted, V(major.minor) or V(major.minor.patch) (the patch is not compared).
    type: str
    default: '5.4'
  install:
    description:
      - Install O(packages) with M(ansible.builtin.package) when a tool labs need (C(nsenter), C(nc), C(nft),
        C(iptables-nft), C(ip)) or pyroute2 is missing, then read the host again; when false, fail and name what is
        missing.
    type: bool
    default: true
  packages:
    description: Packages to install instead of the distribution's list (Debian and Ubuntu have one).
    type: list
    elements: str
    default: []
'''
