#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: host_prepare
short_description: Make a host ready for packet filter labs in one task
version_added: 0.7.0
description:
  - Reads the host as M(pflab.netfilter.host_info) does, fails when its kernel is older than O(min_kernel), and removes
    what runs whose owner is gone left behind, as M(pflab.netfilter.lab_cleanup) does.
  - When a tool every lab needs (C(nsenter), C(nc), C(nft), C(iptables-nft), C(ip)) or pyroute2 is missing, the action
    plugin installs O(packages) with M(ansible.builtin.package) and reads the host again; when nothing is missing,
    the task is one module call.
  - Warns when iptables-legacy cannot run (scenarios that need it are skipped with the reason), and names namespaces
    that look like labs but carry no marker.
  - The role P(pflab.netfilter.lab_host#role) is this task.
author:
  - pflab.netfilter developers (@pflab)
extends_documentation_fragment:
  - pflab.netfilter.prepare
options:
  cleanup_unmarked:
    description: Also remove namespaces named like labs that carry no marker.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Installs nothing and removes nothing; says what it would remove.
  diff_mode:
    support: none
    description: No diff is produced.
  action:
    support: full
    description: The action plugin installs the packages between two module calls.
seealso:
  - module: pflab.netfilter.host_info
  - module: pflab.netfilter.lab_cleanup
'''

EXAMPLES = r'''
- name: Make the host ready for labs
  pflab.netfilter.host_prepare:
  register: prepared

- name: Show the kernel the labs run on
  ansible.builtin.debug:
    msg: "{{ prepared.kernel.release }}; iptables-legacy usable: {{ prepared.iptables_legacy.usable }}"
'''

RETURN = r'''
kernel:
  description: Kernel release and version, as M(pflab.netfilter.host_info) returns them, like every key it returns
    (C(os), C(tools), C(iptables_legacy), C(sysctls), C(labs), C(python_modules)).
  returned: always
  type: dict
  sample: {release: 6.1.0-18-amd64, version: '6.1'}
missing:
  description: What a lab needs that the host lacks (empty once ready).
  returned: always
  type: list
  elements: str
  sample: []
install:
  description: The packages the action plugin is to install (only in the first call, when something is missing).
  returned: always
  type: list
  elements: str
installed:
  description: Whether packages were installed.
  returned: always
  type: bool
changes:
  description: What was removed (or would be, in check mode), left by runs whose owner is gone.
  returned: always
  type: list
  elements: str
unmarked:
  description: Namespaces named like labs that carry no marker, left in place unless O(cleanup_unmarked).
  returned: always
  type: list
  elements: str
'''

from ansible_collections.pflab.netfilter.plugins.module_utils import host, reaper
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError
from ansible_collections.pflab.netfilter.plugins.module_utils.module import PflabModule


def main():
    module = PflabModule(argument_spec=dict(host.PREPARE_SPEC, cleanup_unmarked=dict(type='bool', default=False)),
                         supports_check_mode=True)
    facts, install = host.prepare(module)
    if install:
        module.exit_json(changed=False, missing=host.missing(facts), install=install, installed=False, changes=[],
                         unmarked=[], **facts)
    try:
        reaped = reaper.reap(module.check_mode, module.params['cleanup_unmarked'])
    except (PflabError, OSError) as e:
        module.fail_json(msg=str(e), **facts)
    if reaped['failed']:
        module.fail_json(msg='; '.join(reaped['failed']), **facts)
    if reaped['unmarked'] and not module.params['cleanup_unmarked']:
        module.warn('namespaces without a lab marker (made by hand or by a release before 0.5.0), left in place: %s; '
                    'remove them with cleanup_unmarked' % ', '.join(reaped['unmarked']))
    module.exit_json(changed=bool(reaped['changes']), missing=[], install=[], installed=False,
                     changes=reaped['changes'], unmarked=reaped['unmarked'], **facts)


if __name__ == '__main__':
    main()
