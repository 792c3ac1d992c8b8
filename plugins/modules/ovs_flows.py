#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: ovs_flows
short_description: OpenFlow flows that drop or switch TCP/UDP ports on an Open vSwitch bridge, all or nothing
version_added: 0.6.0
description:
  - Adds (O(state=present)) or removes (O(state=absent)) OpenFlow flows on one bridge, each matching IPv4 TCP or UDP by
    destination and/or source port with the action C(drop) or C(NORMAL) (switch it on as the bridge would).
  - Flows are compared in the form C(ovs-ofctl dump-flows) gives; a second run changes nothing. All changes of one
    call go in one OpenFlow 1.4 bundle, so a refused flow leaves the bridge's flow table as it was.
  - With O(netns), works on the switch of a lab made with M(pflab.netfilter.netns_lab)'s
    O(pflab.netfilter.netns_lab#module:bridge) (or a bridged scenario's), whose sockets are in C(/run/pflab/ovs-<netns>);
    a namespace without such a switch is refused (unix sockets are not scoped by network namespace, so the system's
    OVS is never reached from a namespace). With O(host=true), works on the system's OVS (C(/var/run/openvswitch)).
  - The openvswitch.openvswitch collection's modules manage bridges and ports through the system's OVS database and
    have no flow module; a lab switch has a database of its own, so this module uses C(ovs-ofctl) argv lists.
author:
  - pflab.netfilter developers (@pflab)
requirements:
  - Open vSwitch (C(ovs-ofctl), C(ovs-appctl), Debian/Ubuntu package C(openvswitch-switch)) on the target, with the
    bridge running
  - root on the target
extends_documentation_fragment:
  - pflab.netfilter.target
options:
  bridge:
    description: The bridge.
    type: str
    default: br0
  flows:
    description: The flows.
    type: list
    elements: dict
    required: true
    suboptions:
      priority:
        description: OpenFlow priority, 1 to 65535 (higher is tried first; 0 is the bridge's own C(NORMAL) flow).
        type: int
        default: 100
      protocol:
        description: The IPv4 protocol matched.
        type: str
        choices: [tcp, udp]
        default: tcp
      dport:
        description: The destination port matched; any when not given.
        type: int
      sport:
        description: The source port matched; any when not given.
        type: int
      action:
        description: V(drop), or V(normal) (the bridge switches the packet on).
        type: str
        choices: [drop, normal]
        default: drop
      label:
        description: What scenario reports call this flow (1-29 of a-z, 0-9 and '-'); not stored on the bridge.
        type: str
  state:
    description: V(present) adds the flows that are missing; V(absent) removes the flows given (same match and priority).
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    description: Reads the flow table and says what would change.
  diff_mode:
    support: full
    description: The bridge's flow table before and after, without counters.
seealso:
  - module: pflab.netfilter.scenario
  - module: pflab.netfilter.bpf_filter
'''

EXAMPLES = r'''
- name: A lab whose client and server are joined through an Open vSwitch switch
  pflab.netfilter.netns_lab:
    name: demo-ovs
    namespaces: [client, switch, server]
    bridge: switch
  register: bridged

- name: Drop TCP 12345 on the lab's switch, switch TCP 22 on
  pflab.netfilter.ovs_flows:
    netns: "{{ bridged.lab.switch.netns }}"
    flows:
      - dport: 12345
        action: drop
      - dport: 22
        action: normal

- name: Remove the drop again
  pflab.netfilter.ovs_flows:
    netns: "{{ bridged.lab.switch.netns }}"
    flows:
      - dport: 12345
        action: drop
    state: absent

- name: Remove the lab, which stops its switch
  pflab.netfilter.netns_lab:
    name: demo-ovs
    state: absent
'''

RETURN = r'''
changes:
  description: What was added or deleted (or, in check mode, would be), as C(add <flow>) and C(delete <match>).
  returned: always
  type: list
  elements: str
  sample: ['add priority=100,tcp,tp_dst=12345,actions=drop']
flows:
  description: The flows given, in the form dump-flows prints them.
  returned: always
  type: list
  elements: str
  sample: ['priority=100,tcp,tp_dst=12345 actions=drop']
'''

from ansible_collections.pflab.netfilter.plugins.module_utils import ovs
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError
from ansible_collections.pflab.netfilter.plugins.module_utils.module import PflabModule


def main():
    module = PflabModule(argument_spec=ovs.ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = ovs.manage(module, module.params, module.check_mode, module._diff)
    except (PflabError, OSError) as e:
        module.fail_json(msg=str(e))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
