#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: kernel_log
short_description: Take a cursor in the kernel ring buffer and collect the LOG records written after it
version_added: 0.1.0
description:
  - Reads C(/dev/kmsg), where every record has a sequence number and a microsecond timestamp.
  - O(action=mark) returns a cursor, the sequence number of the next record the kernel will write.
  - O(action=collect) returns the netfilter LOG records (iptables C(-j LOG), nftables C(log))
    written since a cursor, in kernel order, each parsed into its fields.
  - When sequence numbers after the cursor have a gap, the ring wrapped and records were
    overwritten before they could be read; RV(lost) counts them. Nothing is guessed.
  - The ring is only read, never cleared.
author:
  - pflab.netfilter developers (@pflab)
requirements:
  - root, or read access to C(/dev/kmsg)
options:
  action:
    description:
      - V(mark) returns a cursor; V(collect) returns the records after O(cursor).
    type: str
    choices: [mark, collect]
    default: mark
  cursor:
    description:
      - Cursor from an earlier O(action=mark) on the same host. Required for O(action=collect).
    type: int
  prefixes:
    description:
      - Keep only LOG records whose message starts with one of these prefixes
        (as given to C(--log-prefix) or nft's C(log prefix)).
      - When empty, every LOG record is kept.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    description: The module only reads, so it runs in check mode too.
  diff_mode:
    support: none
    description: No diff is produced.
notes:
  - LOG rules in a network namespace other than the initial one write nothing unless the
    host-wide sysctl C(net.netfilter.nf_log_all_netns) is 1; it is 1 while a lab made with
    O(pflab.netfilter.netns_lab#module:nf_log_all_netns=true) (the P(pflab.netfilter.lab#role) role's default) or a
    scenario run exists.
  - The ring is shared by the whole host, so choose prefixes that tell your experiment's lines apart.
seealso:
  - module: pflab.netfilter.probe
'''

EXAMPLES = r'''
- name: Take a cursor before the probe
  pflab.netfilter.kernel_log:
    action: mark
  register: before

- name: Probe the server
  pflab.netfilter.probe:
    netns: pfl-demo-client
    address: 198.18.0.2
    port: 12345

- name: Collect what the LOG rules wrote
  pflab.netfilter.kernel_log:
    action: collect
    cursor: "{{ before.cursor }}"
    prefixes: [ipt-input, ipt-output]
  register: trace

- name: Show the order in which the filters saw the packet
  ansible.builtin.debug:
    msg: "{{ trace.records | map(attribute='prefix') | list }}"
'''

RETURN = r'''
cursor:
  description:
    - For O(action=mark), the new cursor.
    - For O(action=collect), the cursor just after the last record read, to collect again from there.
  returned: always
  type: int
  sample: 348
records:
  description: LOG records after the cursor, in the order the kernel wrote them.
  returned: when O(action=collect)
  type: list
  elements: dict
  contains:
    seq:
      description: Kernel sequence number.
      type: int
      sample: 341
    timestamp_us:
      description: Microseconds since boot.
      type: int
      sample: 206073752
    level:
      description: Syslog level (4 is warning).
      type: int
      sample: 4
    prefix:
      description: The record's prefix, surrounding spaces removed.
      type: str
      sample: ipt-input
    message:
      description: The whole message.
      type: str
    fields:
      description: The C(KEY=VALUE) fields of the line (C(IN), C(OUT), C(MAC), C(SRC), C(DST), C(LEN),
        C(TTL), C(PROTO), C(SPT), C(DPT), ...). A transport field whose name the IP header already used
        is prefixed with the protocol (C(ICMP_ID)).
      type: dict
      sample: {IN: to-client, OUT: '', SRC: 198.18.0.1, DST: 198.18.0.2, PROTO: TCP, SPT: '37200', DPT: '12345'}
    ip_flags:
      description: IP flags (C(DF), C(MF), C(CE)).
      type: list
      elements: str
      sample: [DF]
    tcp_flags:
      description: TCP flags, empty for other protocols.
      type: list
      elements: str
      sample: [SYN]
lost:
  description: Records written after the cursor but overwritten before they were read.
  returned: when O(action=collect)
  type: int
  sample: 0
'''

from ansible_collections.pflab.netfilter.plugins.module_utils import kmsg
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError
from ansible_collections.pflab.netfilter.plugins.module_utils.module import PflabModule


def main():
    module = PflabModule(
        argument_spec=dict(
            action=dict(type='str', default='mark', choices=['mark', 'collect']),
            cursor=dict(type='int'),
            prefixes=dict(type='list', elements='str', default=[]),
        ),
        required_if=[('action', 'collect', ['cursor'])],
        supports_check_mode=True,
    )
    p = module.params
    if p['action'] == 'collect' and p['cursor'] is None:
        module.fail_json(msg='action=collect needs a cursor (from an earlier action=mark)')
    try:
        ring = kmsg.read_ring()
        if p['action'] == 'mark':
            module.exit_json(changed=False, cursor=kmsg.cursor_after(ring))
        new, lost, cursor = kmsg.since(ring, p['cursor'])
    except (PflabError, OSError) as e:
        module.fail_json(msg='reading %s: %s' % (kmsg.KMSG_PATH, e))
    module.exit_json(changed=False, cursor=cursor, lost=lost, records=kmsg.log_records(new, p['prefixes']))


if __name__ == '__main__':
    main()
