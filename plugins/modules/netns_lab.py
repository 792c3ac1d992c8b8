#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: netns_lab
short_description: Create or remove an isolated lab of network namespaces joined by veth pairs
version_added: 0.1.0
description:
  - Creates named network namespaces C(pfl-<name>-<role>), brings their loopback up and joins
    them with veth pairs, each end addressed from O(subnet). Everything is done over netlink
    with pyroute2; the host's own network namespace is never changed.
  - Link number I(i) takes the I(i)-th C(/30) of O(subnet); its first end gets C(.1), its second C(.2).
    The interface in namespace A that leads to namespace B is named C(to-B).
  - Several labs with different O(name)s coexist on one host. Their addresses may overlap,
    since nothing routes between labs.
  - O(state=absent) stops every process still running in the lab's namespaces and removes
    every namespace of the lab (whatever its roles), which removes their veths. Nothing else is touched.
  - The lab is recorded in C(/run/pflab/lab-<name>.json) as kept until removed. A lab of the same name left by a
    scenario run that was killed is removed first; a running scenario's lab is refused.
author:
  - pflab.netfilter developers (@pflab)
requirements:
  - pyroute2 (Debian/Ubuntu package C(python3-pyroute2)) on the target
  - with O(bridge), Open vSwitch and ethtool (Debian/Ubuntu packages C(openvswitch-switch), C(ethtool)) on the target
  - root on the target
options:
  name:
    description:
      - Lab id. Namespace names derive from it, so two labs with different ids coexist.
      - 1 to 32 characters of V(a-z), V(0-9) and V(-), starting with a letter or digit.
    type: str
    required: true
  state:
    description:
      - V(present) creates what is missing and repairs what differs; V(absent) removes the lab.
    type: str
    choices: [present, absent]
    default: present
  namespaces:
    description:
      - Roles of the lab's namespaces, at least two, each 1 to 10 characters of V(a-z) and V(0-9).
    type: list
    elements: str
    default: [client, server]
  links:
    description:
      - Pairs of roles to join with a veth pair, in order.
      - Defaults to joining consecutive O(namespaces) (V(client)-V(server) for the default).
    type: list
    elements: list
  subnet:
    description:
      - IPv4 network the link addresses come from, one C(/30) per link.
      - The default lies in 198.18.0.0/15, the range reserved for network benchmarking.
    type: str
    default: 198.18.0.0/24
  bridge:
    description:
      - One of O(namespaces) as an Open vSwitch switch. Each other namespace gets one link to it (unless O(links) is
        given), the switch's ends carry no address and the others share one segment of O(subnet).
      - ovsdb-server and ovs-vswitchd run inside that namespace with a directory of their own
        (C(/run/pflab/ovs-<namespace>), RV(lab.switch)), on the userspace datapath (no openvswitch kernel module
        needed), with a bridge C(br0) holding the switch's ends; transmit checksum offload is turned off on the lab's
        veths. O(state=absent) stops them with the lab.
    type: str
    version_added: 0.6.0
  nf_log_all_netns:
    description:
      - The lab's LOG rules need the host-wide sysctl C(net.netfilter.nf_log_all_netns=1), without which LOG in a
        namespace writes nothing. It is set to 1 while any lab that needs it exists, and set back to its original
        value when the last one is removed.
    type: bool
    default: false
    version_added: 0.5.0
attributes:
  check_mode:
    support: full
    description: Reports the changes it would make and makes none.
  diff_mode:
    support: none
    description: No diff is produced.
notes:
  - Nothing routes beyond a link's two ends; the lab is for traffic between directly joined namespaces.
seealso:
  - module: pflab.netfilter.listener
  - module: pflab.netfilter.probe
  - module: pflab.netfilter.kernel_log
'''

EXAMPLES = r'''
- name: Create the default lab (namespaces pfl-demo-client and pfl-demo-server)
  pflab.netfilter.netns_lab:
    name: demo
  register: lab

- name: Show the server's address
  ansible.builtin.debug:
    msg: "server listens on {{ lab.lab.addresses.server }} in {{ lab.lab.namespaces.server }}"

- name: Three namespaces in a row
  pflab.netfilter.netns_lab:
    name: chain
    namespaces: [client, router, server]
    subnet: 198.18.1.0/24

- name: Remove the labs
  pflab.netfilter.netns_lab:
    name: "{{ item }}"
    state: absent
  loop: [demo, chain]
'''

RETURN = r'''
lab:
  description: The lab as planned. For O(state=absent) only RV(lab.name) is set.
  returned: always
  type: dict
  contains:
    name:
      description: Lab id.
      type: str
      sample: demo
    subnet:
      description: The lab subnet.
      type: str
      sample: 198.18.0.0/24
    namespaces:
      description: Namespace name of each role.
      type: dict
      sample: {client: pfl-demo-client, server: pfl-demo-server}
    addresses:
      description: First address of each role.
      type: dict
      sample: {client: 198.18.0.1, server: 198.18.0.2}
    links:
      description: Each link as its two ends (role, netns, ifname, address, prefixlen).
      type: list
      elements: list
      sample:
        - - {role: client, netns: pfl-demo-client, ifname: to-server, address: 198.18.0.1, prefixlen: 30}
          - {role: server, netns: pfl-demo-server, ifname: to-client, address: 198.18.0.2, prefixlen: 30}
    bridge:
      description: The role that is the lab's switch, or null.
      type: str
      sample: switch
    switch:
      description: Where the switch's daemons and bridge are (C(netns), the O(pflab.netfilter.ovs_flows#module:netns)
        of M(pflab.netfilter.ovs_flows); C(rundir), their directory; C(bridge)); null without O(bridge).
      type: dict
      sample: {netns: pfl-demo-switch, rundir: /run/pflab/ovs-pfl-demo-switch, bridge: br0}
changes:
  description: What was (or in check mode would be) changed, in order.
  returned: always
  type: list
  elements: str
  sample: [create namespace pfl-demo-client, create namespace pfl-demo-server]
killed_pids:
  description: Processes stopped because they still ran in the lab's namespaces (O(state=absent)).
  returned: always
  type: list
  elements: int
  sample: []
'''

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.pflab.netfilter.plugins.module_utils import lab as lab_engine, ovs
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError
from ansible_collections.pflab.netfilter.plugins.module_utils.module import PflabModule


def main():
    module = PflabModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            namespaces=dict(type='list', elements='str', default=['client', 'server']),
            links=dict(type='list', elements='list'),
            subnet=dict(type='str', default=lab_engine.DEFAULT_SUBNET),
            nf_log_all_netns=dict(type='bool', default=False),
            bridge=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    if lab_engine.PYROUTE2_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib('pyroute2'), exception=lab_engine.PYROUTE2_IMPORT_ERROR)
    p = module.params
    try:
        if p['state'] == 'absent':
            lab_engine.check_lab_id(p['name'])
            changes, killed = lab_engine.discard(p['name'], module.check_mode)
            result = dict(lab=dict(name=p['name']), changes=changes, killed_pids=killed)
        else:
            plan = lab_engine.LabPlan(p['name'], p['namespaces'], p['links'], p['subnet'], bridge=p['bridge'])
            if p['bridge']:
                missing = ovs.unavailable(module.get_bin_path)
                if missing:
                    module.fail_json(msg='bridge %s: %s' % (p['bridge'], missing))
            changes = lab_engine.keep(plan, p['nf_log_all_netns'], module.check_mode)
            result = dict(lab=plan.as_result(), changes=changes, killed_pids=[])
    except (PflabError, OSError) as e:
        module.fail_json(msg=str(e))
    module.exit_json(changed=bool(result['changes']), **result)


if __name__ == '__main__':
    main()
