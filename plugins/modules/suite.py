#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: suite
short_description: Run many packet filter experiments on a host in one call, each in a lab of its own, in parallel
version_added: 0.7.0
description:
  - Runs every scenario of O(scenarios) as M(pflab.netfilter.scenario) runs one, each in a fresh lab of its own that is
    removed in every case, up to O(parallel) labs at once; RV(results) has one result per scenario, in the order given,
    as a loop of M(pflab.netfilter.scenario) would register them (the report reads either).
  - Each run is a process of its own, whose lab, drop witness and timer are its own. Labs never share interface names
    or probe source ports, so every LOG record is matched to its lab and probe; the results are the ones the scenarios
    give run one by one.
  - The host is prepared once for the suite, as M(pflab.netfilter.host_prepare) does, in the same module call - the
    task fails on a kernel older than O(min_kernel), packages are installed only when a tool is missing, and labs
    left by runs whose owner is gone are removed before and after the runs.
  - On the controller, the action plugin reads each scenario file and checks it against the collection's JSON Schema; a
    scenario that cannot be read or checked fails alone (its result has C(failed) and C(msg)), the others run.
  - A failed scenario is a result, not a failed task. The task fails only on wrong arguments, or when the suite itself
    is stopped (its running labs are removed first).
  - Leaves the host as it found it, so it never reports a change.
author:
  - pflab.netfilter developers (@pflab)
requirements:
  - what M(pflab.netfilter.scenario) requires
extends_documentation_fragment:
  - pflab.netfilter.prepare
options:
  scenarios:
    description:
      - The scenarios, in order. Each is the path on the controller of a scenario file, or a mapping with one of C(src)
        (a path) and C(scenario) (the scenario as data), and optionally C(variant), as the options of
        M(pflab.netfilter.scenario) are.
      - The module receives them read and checked, as data.
    type: list
    elements: raw
    required: true
  parallel:
    description: Labs at once; default twice the CPUs the module may use (a run mostly waits on the kernel), at most 64.
    type: int
  timeout:
    description: Seconds each scenario's run may take (at most 3600); then its lab is removed and it fails.
    type: int
    default: 30
attributes:
  check_mode:
    support: partial
    details: Checks every scenario and its steps, builds no lab and runs nothing (each RV(results) status is V(not run)).
    description: Can run in check_mode and return a changed status prediction without modifying the target.
  diff_mode:
    support: none
    description: The runs leave nothing behind to show a difference of.
  action:
    support: full
    description: The scenarios are read and checked on the controller, which installs missing packages between two
      module calls.
seealso:
  - module: pflab.netfilter.scenario
  - module: pflab.netfilter.report
'''

EXAMPLES = r'''
- name: Run the article's experiments, two labs at once
  pflab.netfilter.suite:
    scenarios: "{{ query('ansible.builtin.fileglob', playbook_dir ~ '/scenarios/article/*.yml') | sort }}"
    parallel: 2
  register: pflab_runs

- name: One experiment as written and with the load order reversed
  pflab.netfilter.suite:
    scenarios:
      - "{{ playbook_dir }}/scenarios/article/experiment-2.yml"
      - src: "{{ playbook_dir }}/scenarios/article/experiment-2.yml"
        variant:
          id: experiment-2-reversed
          reverse: true
          expect: {reached: false, trace: [ipt-input]}
  register: pflab_runs
'''

RETURN = r'''
results:
  description:
    - One result per scenario, in the order of O(scenarios), with the keys M(pflab.netfilter.scenario) returns
      (C(id), C(status), C(probes), C(trace), C(hooks) and the rest), C(scenario), the scenario as run, and C(item),
      the entry of O(scenarios) it is of.
    - A scenario that failed has C(failed) true and C(msg); its lab was removed.
  returned: success
  type: list
  elements: dict
summary:
  description: How many scenarios ran, were skipped, failed, or were not run (check mode).
  returned: success
  type: dict
  sample: {ran: 6, skipped: 0, failed: 0, not run: 0}
install:
  description: The packages the action plugin is to install first (only in the first module call, when a tool is
    missing; in check mode, what would be installed).
  returned: success
  type: list
  elements: str
parallel:
  description: The most labs the suite ran at once (O(parallel), or its default here).
  returned: success, unless check mode
  type: int
  sample: 4
cleaned:
  description: What the suite removed before, during and after its runs, left by runs whose owner is gone (see
    M(pflab.netfilter.lab_cleanup)), a run it killed or that died included.
  returned: success, unless check mode
  type: list
  elements: str
duration_ms:
  description: Time the suite took on the target, from reading the host to the last lab's removal.
  returned: success, unless check mode
  type: float
  sample: 1210.5
'''

import time

from ansible_collections.pflab.netfilter.plugins.module_utils import host, scenario, suite
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError
from ansible_collections.pflab.netfilter.plugins.module_utils.module import PflabModule


def main():
    module = PflabModule(
        argument_spec=dict(
            host.PREPARE_SPEC,
            scenarios=dict(type='list', elements='raw', required=True),
            parallel=dict(type='int'),
            timeout=dict(type='int', default=30),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not all(isinstance(s, dict) and 'id' in s and 'expect' in s for s in p['scenarios']):
        module.fail_json(msg='the scenarios were not read: run this module through its action plugin '
                             '(pflab.netfilter.suite in a task), which reads them on the controller')
    if not 1 <= p['timeout'] <= scenario.TIMEOUT_MAX:
        module.fail_json(msg='timeout must be from 1 to %d seconds, got %d' % (scenario.TIMEOUT_MAX, p['timeout']))
    parallel = suite.default_parallel() if p['parallel'] is None else p['parallel']
    if not 1 <= parallel <= suite.PARALLEL_MAX:
        module.fail_json(msg='parallel must be from 1 to %d, got %d' % (suite.PARALLEL_MAX, parallel))
    runs = suite.Suite(module, p['scenarios'], parallel, p['timeout'])
    started = time.monotonic()
    facts, install = host.prepare(module)
    if module.check_mode:
        module.exit_json(changed=False, install=install, results=runs.checked_results())
    if install:
        module.exit_json(changed=False, install=install, results=[])  # the action plugin installs them, then again
    try:
        results, cleaned = runs.run(scenario.HostFacts(module, facts['tools'], facts['kernel']['release']))
    except (PflabError, OSError) as e:
        module.fail_json(msg='the suite stopped: %s; the labs its runs had made were removed' % e)
    module.exit_json(changed=False, install=[], results=results, parallel=parallel, cleaned=cleaned,
                     duration_ms=round((time.monotonic() - started) * 1000.0, 1))


if __name__ == '__main__':
    main()
