#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: host_info
short_description: Kernel, packet filter tools and lab state of a host
version_added: 0.1.0
description:
  - Returns the kernel release, the distribution, the path and version of every tool a lab uses,
    whether iptables-legacy can run at all, the sysctls a lab depends on and the labs present.
  - Reads only. It never lists an iptables-legacy table, since reading an absent table with C(-t)
    creates it and registers its hooks.
  - M(pflab.netfilter.host_prepare) (the P(pflab.netfilter.lab_host#role) role) reads the same for its preflight.
author:
  - pflab.netfilter developers (@pflab)
options: {}
attributes:
  check_mode:
    support: full
    description: The module only reads.
  diff_mode:
    support: none
    description: No diff is produced.
'''

EXAMPLES = r'''
- name: Learn what the host offers
  pflab.netfilter.host_info:
  register: host

- name: Stop when iptables-legacy cannot run
  ansible.builtin.assert:
    that: host.iptables_legacy.usable
    fail_msg: "iptables-legacy cannot run here: {{ host.iptables_legacy.reason }}"
'''

RETURN = r'''
kernel:
  description: Kernel release and its major.minor version.
  returned: always
  type: dict
  sample: {release: 6.18.44-fc-v669, version: '6.18'}
os:
  description: Distribution from C(/etc/os-release).
  returned: always
  type: dict
  sample: {id: debian, id_like: [], version_id: '12'}
tools:
  description: For each of C(iptables), C(iptables-legacy), C(iptables-nft), C(nft), C(ip), C(nc) and C(nsenter),
    its path (null when missing) and the first line of its version (null when it has none).
  returned: always
  type: dict
  sample: {nft: {path: /usr/sbin/nft, version: 'nftables v1.0.6 (Lester Gooch #5)'}}
iptables_legacy:
  description: Whether iptables-legacy can run (binary present and kernel support), and why not.
  returned: always
  type: dict
  sample: {usable: true, reason: null}
sysctls:
  description: Current value of the sysctls labs depend on (null when the kernel has none).
  returned: always
  type: dict
  sample: {net.netfilter.nf_log_all_netns: '0'}
labs:
  description: Ids of the labs whose namespaces exist on the host.
  returned: always
  type: list
  elements: str
  sample: [article]
python_modules:
  description: Whether the Python modules the lab modules use are importable by the target's interpreter.
  returned: always
  type: dict
  sample: {pyroute2: true, nftables: true}
'''

from ansible_collections.pflab.netfilter.plugins.module_utils import host, proc
from ansible_collections.pflab.netfilter.plugins.module_utils.module import PflabModule


def main():
    module = PflabModule(argument_spec={}, supports_check_mode=True)
    facts = host.gather(module.get_bin_path, proc.run)
    module.exit_json(changed=False, **facts)


if __name__ == '__main__':
    main()
