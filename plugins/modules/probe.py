#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: probe
short_description: One TCP connect from a network namespace, with a timeout in milliseconds
version_added: 0.1.0
description:
  - Opens one TCP connection from inside O(netns) to O(address):O(port) and closes it at once.
  - A SYN dropped by a filter shows as RV(outcome=timeout); a RST or ICMP port unreachable as V(refused);
    an ICMP host or network unreachable, or no route, as V(unreachable).
  - On a veth a connect takes about 40 microseconds, and the first SYN retransmit comes after 1 s,
    so the default 200 ms timeout is a safe verdict that the SYN was dropped.
author:
  - pflab.netfilter developers (@pflab)
requirements:
  - root on the target
options:
  netns:
    description:
      - Network namespace to connect from, for example RV(pflab.netfilter.netns_lab#module:lab.namespaces.client).
    type: str
    required: true
  address:
    description:
      - IPv4 or IPv6 address to connect to.
    type: str
    required: true
  port:
    description:
      - TCP port to connect to.
    type: int
    default: 12345
  timeout_ms:
    description:
      - How long to wait for the connection, in milliseconds, at most 10000.
    type: int
    default: 200
attributes:
  check_mode:
    support: full
    description: A probe changes nothing, so it runs in check mode too.
  diff_mode:
    support: none
    description: No diff is produced.
notes:
  - C(nc -l -k) has a backlog of one; leave 10 ms or more between probes to the same listener.
seealso:
  - module: pflab.netfilter.listener
  - module: pflab.netfilter.kernel_log
'''

EXAMPLES = r'''
- name: Connect from the client to the server
  pflab.netfilter.probe:
    netns: pfl-demo-client
    address: 198.18.0.2
    port: 12345
    timeout_ms: 200
  register: result

- name: Tell whether the packet got through
  ansible.builtin.debug:
    msg: "{{ 'reached' if result.reached else 'blocked (' ~ result.outcome ~ ')' }} in {{ result.elapsed_ms }} ms"
'''

RETURN = r'''
reached:
  description: Whether the connection was established.
  returned: success
  type: bool
  sample: false
outcome:
  description: V(connected), V(refused), V(timeout) or V(unreachable).
  returned: success
  type: str
  sample: timeout
elapsed_ms:
  description: Time the connect took, in milliseconds.
  returned: success
  type: float
  sample: 200.41
source_port:
  description: The local port the connection came from (to find its lines in the kernel log).
  returned: success
  type: int
  sample: 40312
decided_by:
  description: What gave the outcome; V(syn-ack), V(reset), V(error) (an ICMP error, or no route) or V(timeout)
    (nothing answered in O(timeout_ms)).
  returned: success
  type: str
  sample: timeout
'''

import ipaddress

from ansible.module_utils.common.text.converters import to_text

from ansible_collections.pflab.netfilter.plugins.module_utils import probe
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError
from ansible_collections.pflab.netfilter.plugins.module_utils.module import PflabModule


def main():
    module = PflabModule(
        argument_spec=dict(
            netns=dict(type='str', required=True),
            address=dict(type='str', required=True),
            port=dict(type='int', default=12345),
            timeout_ms=dict(type='int', default=200),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        address = str(ipaddress.ip_address(to_text(p['address'])))
    except ValueError:
        module.fail_json(msg='address %r is not an IP address' % p['address'])
    if not 1 <= p['port'] <= 65535:
        module.fail_json(msg='port %d is out of range 1-65535' % p['port'])
    if not 1 <= p['timeout_ms'] <= probe.TIMEOUT_MS_MAX:
        module.fail_json(msg='timeout_ms must be from 1 to %d, got %d' % (probe.TIMEOUT_MS_MAX, p['timeout_ms']))
    try:
        outcome, elapsed_ms, source_port, decided = probe.tcp_connect(p['netns'], address, p['port'], p['timeout_ms'])
    except (PflabError, OSError) as e:
        module.fail_json(msg=str(e))
    module.exit_json(changed=False, reached=outcome == 'connected', outcome=outcome, elapsed_ms=elapsed_ms,
                     source_port=source_port, decided_by=decided)


if __name__ == '__main__':
    main()
