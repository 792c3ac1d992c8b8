#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: lab_cleanup
short_description: Find and remove labs whose owner is gone, and set nf_log_all_netns back when no lab needs it
version_added: 0.5.0
description:
  - Every lab carries a marker in C(/run/pflab) naming its owner (pid, start time and boot id of the process
    that runs it; none for a lab kept until removed by M(pflab.netfilter.netns_lab)). A lab is stale when its owner
    is gone (the module was killed, or the host rebooted), or when it is a kept lab whose namespaces were removed by
    other means. Scratch namespaces (C(pflscratch-<pid>-<start>-<random>)) are stale when the process they name is
    gone.
  - Removes what is stale; for a lab, every process in its namespaces (listeners, daemons), its namespaces and their
    veths, the listeners' pidfiles and logs, and its marker. Then sets C(net.netfilter.nf_log_all_netns) to what the
    remaining labs need, its original value when none does.
  - Labs whose owner runs are never touched, so this is safe while other runs go on.
  - M(pflab.netfilter.scenario) does the same before each run, M(pflab.netfilter.suite) before and after its runs,
    and M(pflab.netfilter.host_prepare) (the role P(pflab.netfilter.lab_host#role)) when it prepares a host.
author:
  - pflab.netfilter developers (@pflab)
requirements:
  - iproute2 on the target
  - root on the target
options:
  unmarked:
    description:
      - Also remove namespaces named like labs (C(pfl-*)) that carry no marker (made by hand, or by a release before
        0.5.0). They are always reported in RV(unmarked).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reports what it would remove and removes nothing.
  diff_mode:
    support: none
    description: No diff is produced.
seealso:
  - module: pflab.netfilter.netns_lab
  - module: pflab.netfilter.scenario
'''

EXAMPLES = r'''
- name: Remove labs left by killed runs
  pflab.netfilter.lab_cleanup:
  register: cleanup

- name: Say what was removed
  ansible.builtin.debug:
    var: cleanup.changes
'''

RETURN = r'''
labs:
  description: Stale labs found (and, unless in check mode, removed).
  returned: always
  type: list
  elements: str
  sample: [sc-4121]
scratch:
  description: Stale scratch namespaces found (and removed).
  returned: always
  type: list
  elements: str
  sample: [pflscratch-4121-88123-a1b2c3]
unmarked:
  description: Namespaces named like labs without a marker; removed only with O(unmarked=true).
  returned: always
  type: list
  elements: str
  sample: []
files:
  description: Listener pidfiles and logs in C(/run/pflab) whose namespace is gone (and removed).
  returned: always
  type: list
  elements: str
  sample: [/run/pflab/nc-pfl-sc-4121-server-12345.pid]
changes:
  description: What was (or in check mode would be) done, in order.
  returned: always
  type: list
  elements: str
  sample: ['remove lab sc-4121: its owner, pid 4121, is gone', 'stop processes [4188] in pfl-sc-4121-server',
           'remove namespace pfl-sc-4121-server', 'set net.netfilter.nf_log_all_netns back to 0']
failed:
  description: What could not be removed, with the reason; it is tried again by the next cleanup.
  returned: always
  type: list
  elements: str
  sample: []
log_holders:
  description: Labs that need C(net.netfilter.nf_log_all_netns=1) after the cleanup.
  returned: always
  type: list
  elements: str
  sample: []
'''

from ansible_collections.pflab.netfilter.plugins.module_utils import reaper
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError
from ansible_collections.pflab.netfilter.plugins.module_utils.module import PflabModule


def main():
    module = PflabModule(argument_spec=dict(unmarked=dict(type='bool', default=False)), supports_check_mode=True)
    try:
        result = reaper.reap(module.check_mode, module.params['unmarked'])
    except (PflabError, OSError) as e:
        module.fail_json(msg=str(e))
    if result['failed']:
        module.fail_json(msg='; '.join(result['failed']), **result)
    module.exit_json(changed=bool(result['changes']), **result)


if __name__ == '__main__':
    main()
