#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: listener
short_description: Run a netcat listener (nc -l -k PORT) inside a network namespace
version_added: 0.1.0
description:
  - Starts C(nc -l -k PORT), as in the article, detached inside a network namespace, records
    its pid in C(/run/pflab/nc-<netns>-<port>.pid) and returns only once the port is listening.
  - O(state=absent) stops it. A pid from the pidfile is only trusted while it runs that exact command
    in that namespace, so a recycled pid is never signalled.
author:
  - pflab.netfilter developers (@pflab)
requirements:
  - netcat-openbsd (or another C(nc) that takes C(-l -k PORT)) and C(nsenter) on the target
options:
  netns:
    description:
      - Name of the network namespace, for example RV(pflab.netfilter.netns_lab#module:lab.namespaces.server).
    type: str
    required: true
  port:
    description:
      - TCP port to listen on.
    type: int
    default: 12345
  state:
    description:
      - V(present) starts the listener unless it runs; V(absent) stops it.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    description: Reports whether it would start or stop the listener, and does neither.
  diff_mode:
    support: none
    description: No diff is produced.
notes:
  - C(nc -l -k) accepts one connection at a time with a backlog of one; leave 10 ms or more between probes.
seealso:
  - module: pflab.netfilter.netns_lab
  - module: pflab.netfilter.probe
'''

EXAMPLES = r'''
- name: Listen on 12345 in the server namespace
  pflab.netfilter.listener:
    netns: pfl-demo-server
    port: 12345

- name: Stop the listener
  pflab.netfilter.listener:
    netns: pfl-demo-server
    port: 12345
    state: absent
'''

RETURN = r'''
pid:
  description: Pid of the running listener; null when it is not running (or, in check mode, not yet started).
  returned: always
  type: int
  sample: 3134
pidfile:
  description: Where the pid is recorded.
  returned: always
  type: str
  sample: /run/pflab/nc-pfl-demo-server-12345.pid
argv:
  description: The listener's command line.
  returned: always
  type: list
  elements: str
  sample: [/usr/bin/nc, -l, -k, '12345']
'''

from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError
from ansible_collections.pflab.netfilter.plugins.module_utils.listener import Listener
from ansible_collections.pflab.netfilter.plugins.module_utils.module import PflabModule


def main():
    module = PflabModule(
        argument_spec=dict(
            netns=dict(type='str', required=True),
            port=dict(type='int', default=12345),
            state=dict(type='str', default='present', choices=['present', 'absent']),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        nc = module.get_bin_path('nc', required=p['state'] == 'present') or 'nc'
        listener = Listener(p['netns'], p['port'], nc)
        pid = listener.pid()
        changed = (pid is None) == (p['state'] == 'present')
        if changed and not module.check_mode:
            if p['state'] == 'present':
                pid = listener.start()
            else:
                listener.stop(pid)
                pid = None
        elif pid is None and not module.check_mode:
            listener.forget()  # a stale pidfile left by a listener that died
    except (PflabError, OSError) as e:
        module.fail_json(msg=str(e))
    module.exit_json(changed=changed, pid=pid, pidfile=listener.pidfile, argv=listener.argv)


if __name__ == '__main__':
    main()
