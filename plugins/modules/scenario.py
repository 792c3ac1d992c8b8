#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: scenario
short_description: Run one packet filter experiment in a fresh lab and return what the kernel logged
version_added: 0.3.0
description:
  - Runs one scenario in one call on the target; a fresh lab of network namespaces, the steps in order, a netcat
    listener, a kernel log cursor, the probes, the LOG records collected, and the lab removed in every case
    (success, error, timeout or termination).
  - While the probes run, a tracefs instance of the run's own records the kernel's dropped packets
    (C(skb:kfree_skb), the drop witness) and the LOG records' texts on CLOCK_MONOTONIC, the clock of the BPF
    programs' sightings; RV(trace) is LOG records, sightings and drops in the order the packets met them.
  - A scenario whose steps need what the host lacks (iptables-legacy, bpf(2), Open vSwitch, the netdev egress hook) is
    skipped with the reason.
  - The order of the scenario's C(steps) is the order in which the filters register their hooks; the module measures
    that order after every step and returns the hooks with their priorities, registration order and LOG prefixes.
  - On the controller, the action plugin reads O(src) and checks the scenario against the collection's JSON Schema
    (C(schemas/scenario.schema.json)) before anything runs; errors name the file and the field.
  - Leaves the host as it found it, so it never reports a change.
author:
  - pflab.netfilter developers (@pflab)
requirements:
  - iproute2, netcat-openbsd, and nftables, iptables, pyroute2 (tc programs), Open vSwitch and ethtool for the steps
    that use them, on the target
  - C(jsonschema) on the controller
  - root on the target; the run sets C(net.netfilter.nf_log_all_netns=1), without which LOG rules in namespaces
    write nothing, and sets it back after the last run or lab that needs it
options:
  src:
    description: Path on the controller of a scenario file (YAML). One of O(src) and O(scenario) is required.
    type: path
  scenario:
    description:
      - The scenario as data, in the schema of C(schemas/scenario.schema.json) (see the collection's README).
      - C(id), C(title), C(source) (which experiment of the article, or C(beyond the article)) and C(expect)
        (C(reached), a bool, and C(trace), the LOG prefixes in order) are required; C(notes) is free text.
      - C(steps) is the ordered list of steps, the order of registration. Each has one key, V(iptables), V(nft),
        V(bpf) or V(ovs), whose value is the arguments of M(pflab.netfilter.iptables_rules),
        M(pflab.netfilter.nft_rules), M(pflab.netfilter.bpf_filter) or M(pflab.netfilter.ovs_flows); their C(netns)
        names a role of the lab (default C(server)). C(ruleset_file) is not allowed (use C(ruleset)). An interface
        (bpf's C(interface), a netdev chain's C(device)) is given as the peer role it leads to. ovs steps go to the
        C(bridge)'s switch.
      - C(bridge) makes one of the C(namespaces) an Open vSwitch switch joining the others (see
        M(pflab.netfilter.netns_lab)'s O(pflab.netfilter.netns_lab#module:bridge)).
      - C(probes) are TCP connects with C(from) and C(to) roles (default C(client) to C(server)), C(port)
        (12345) and C(timeout_ms) (200); default one probe. C(namespaces) lists the lab's roles
        (default C(client), C(server)).
    type: dict
  variant:
    description:
      - A change applied on the controller to the scenario before it runs, for the order matrix.
      - C(reverse) (bool) runs the steps in the opposite order; C(nft_priority) (int) gives every nft base chain of
        the steps this priority; C(iptables_backend) (V(legacy) or V(nft)) replaces the backend of the iptables
        steps; C(reload) (bool) appends the scenario's last nft ruleset step again (a reload with C(nft -f)).
      - C(id), C(title) and C(expect) replace the scenario's own.
    type: dict
  lab:
    description: Lab id for the run; its namespaces are C(pfl-<lab>-<role>). Default C(sc-<pid>).
    type: str
  timeout:
    description: Seconds the whole run may take (at most 3600); then the lab is removed and the task fails.
    type: int
    default: 30
attributes:
  check_mode:
    support: partial
    details: Checks the scenario and its steps, builds no lab and runs nothing (RV(status) is V(not run)).
    description: Can run in check_mode and return a changed status prediction without modifying the target.
  diff_mode:
    support: none
    description: The run leaves nothing behind to show a difference of.
  action:
    support: full
    description: The scenario is read and checked on the controller.
seealso:
  - module: pflab.netfilter.iptables_rules
  - module: pflab.netfilter.nft_rules
  - module: pflab.netfilter.report
'''

EXAMPLES = r'''
- name: Run the article's second experiment
  pflab.netfilter.scenario:
    src: "{{ playbook_dir }}/scenarios/article/experiment-2.yml"
  register: run

- name: The same with the load order reversed (nft first)
  pflab.netfilter.scenario:
    src: "{{ playbook_dir }}/scenarios/article/experiment-2.yml"
    variant:
      id: experiment-2-reversed
      reverse: true
      expect: {reached: false, trace: [ipt-input]}

- name: A scenario written inline
  pflab.netfilter.scenario:
    scenario:
      id: nft-drop
      title: nftables drops at input
      source: beyond the article
      steps:
        - nft:
            table: filter
            chains:
              - name: input
                hook: input
                rules: ['tcp dport 12345 log prefix "nft-input" drop']
      expect: {reached: false, trace: [nft-input]}
'''

RETURN = r'''
id:
  description: The scenario's id.
  returned: always
  type: str
  sample: experiment-2
status:
  description: V(ran), V(skipped) (a step needs what the host lacks, see RV(reason)) or V(not run) (check mode).
  returned: always
  type: str
  sample: ran
reason:
  description: Why the scenario was skipped.
  returned: when RV(status=skipped)
  type: str
scenario:
  description: The scenario as run (after O(variant)).
  returned: always
  type: dict
kernel:
  description: Kernel release of the target.
  returned: unless check mode
  type: str
  sample: 6.1.0-18-amd64
versions:
  description: First version line of iptables, iptables-legacy, iptables-nft, nft and ip (iproute2); null when missing.
  returned: unless check mode
  type: dict
  sample: {iptables: 'iptables v1.8.9 (nf_tables)', nft: 'nftables v1.0.6 (Lester Gooch #5)', ip: 'ip utility, iproute2-6.1.0'}
nf_log_all_netns:
  description: The value of C(net.netfilter.nf_log_all_netns) during the run (LOG rules in namespaces are silent at 0).
  returned: unless check mode
  type: str
  sample: '1'
steps:
  description: What each step changed, with the filter that made its hooks.
  returned: when RV(status=ran)
  type: list
  elements: dict
  sample: [{kind: iptables, netns: server, filter: iptables-legacy, changes: ['INPUT: 2 rules added, 0 removed']}]
hooks:
  description:
    - Hooks, programs and flows registered at probe time, in registration order; C(registered) counts
      registrations in the namespace, C(step) is the step that registered it. C(layer) is V(netfilter), V(bpf) or
      V(ovs); C(point) where it sits on the packet's way (V(xdp), V(tc-ingress), V(netdev-ingress), V(bridge),
      V(prerouting), V(input), V(output), V(postrouting), V(netdev-egress), V(tc-egress)); C(where) names it;
      C(marks) are the marks it leaves in RV(trace) (its chain's LOG prefixes, a program's label); C(hits) an OVS
      flow's packets.
    - C(walks), for each probe whose packet passes the hook, what its chain does to that packet (the SYN, or the
      SYN-ACK back), read from the rules; C(logs) are the LOG prefixes it hits in order, C(certain) false where the
      match depends on something the reading does not model; C(verdict) is V(accept), V(drop) or V(maybe).
  returned: when RV(status=ran)
  type: list
  elements: dict
  sample: [{filter: iptables-legacy, family: ip, table: filter, chain: INPUT, hook: input, priority: 0, step: 1,
            registered: 1, netns: server, log_prefixes: [ipt-input],
            walks: [{probe: 1, packet: syn, logs: [{prefix: ipt-input, certain: true}], verdict: drop}]}]
unregistered:
  description: Hooks a later step removed (for example iptables-nft's tables deleted by C(flush ruleset)).
  returned: when RV(status=ran)
  type: list
  elements: dict
probes:
  description:
    - Each probe with its outcome (V(connected), V(refused), V(unreachable), V(dropped) or V(timeout)), its source port
      (from the lab's block, given with the claim, so that no two live labs' probes share one), and C(window_ns), its
      start and end on CLOCK_MONOTONIC.
    - C(decided_by) says how the outcome was known; V(syn-ack), V(reset), V(error) (an ICMP error, or no route),
      V(witness) or V(timeout) (nothing told before C(timeout_ms)). V(witness) - the drop witness saw a filter drop
      in this run's context while the socket had no answer, and the socket still had none 2 ms later; the probe
      ends then in labs of veth pairs (not through a C(bridge), where the switch's daemon forwards a packet later and
      taps its copy before the switch namespace's filters run) when C(timeout_ms) is below TCP's first
      retransmission (1 s), after which a retransmitted SYN could still pass.
  returned: when RV(status=ran)
  type: list
  elements: dict
  sample: [{from: client, to: server, address: 198.18.0.2, port: 12345, source_port: 20000, outcome: dropped,
            decided_by: witness, reached: false, elapsed_ms: 0.8, timeout_ms: 200, window_ns: [91236400000, 91236601000]}]
trace:
  description:
    - The probes' SYN and SYN-ACK as the packet met the filters, C(source) V(log) (a LOG record, with its kernel
      sequence number), V(bpf) (a program's sighting) or V(witness) (a dropped packet, with C(reason),
      C(location) and the C(filter) that dropped it), ordered by C(time_ns) (CLOCK_MONOTONIC). C(tie) marks
      records less than a microsecond apart, whose order is not known; without the witness, sightings follow the
      LOG records with C(unordered).
    - A LOG record belongs to a probe only when it has the probe's addresses and ports and names only this lab's
      interfaces, whose names carry a tag no other live lab has (C(<tag>-<peer role>)); a drop, when this run's
      process (or its switch) dropped it during the probe.
  returned: when RV(status=ran)
  type: list
  elements: dict
  sample: [{source: log, seq: 3412, timestamp_us: 91234567, time_ns: 91236522000, prefix: nft-input, probe: 1,
            direction: received, packet: syn, fields: {IN: k3x9-client, OUT: '', SRC: 198.18.0.1, DST: 198.18.0.2,
            SPT: '40312', DPT: '12345'}},
           {source: witness, prefix: drop, probe: 1, time_ns: 91236528000, reason: NETFILTER_DROP,
            location: nft_do_chain+0x3e8/0x610, filter: nftables}]
drops:
  description: The witnessed drops alone (RV(trace) records with C(source=witness)).
  returned: when RV(status=ran)
  type: list
  elements: dict
witness:
  description:
    - Whether the drop witness ran (C(available)), and if not why (C(reason)); the clock the trace shares and its
      check (C(clock)); C(other_drops), drops during the probes that were no filter's (a flooded copy, say),
      left out of RV(trace) (counted by process context, so in a suite they may include other labs' packets that
      this run's softirq handled); C(overwritten), events the witness's buffer lost while the run recorded (drops may be
      missing then; in a suite's shared buffer, any run's events count).
  returned: when RV(status=ran)
  type: dict
  sample: {available: true, reason: null, other_drops: 0, overwritten: 0,
           clock: {name: CLOCK_MONOTONIC, trace_clock: mono, checked: true}}
lost:
  description: Kernel log records overwritten before they were read (the trace may miss lines when not 0).
  returned: when RV(status=ran)
  type: int
  sample: 0
foreign:
  description: Kernel log records with a probe's addresses and ports from interfaces outside this lab (another lab's,
    or anyone's), left out of the trace.
  returned: when RV(status=ran)
  type: int
  sample: 0
retransmitted:
  description: Kernel log records of a SYN or SYN-ACK sent again (a second or more after the probe's first record, as a
    probe with a long O(scenario) C(timeout_ms) into a drop makes), left out of the trace.
  returned: when RV(status=ran)
  type: int
  sample: 0
cleaned:
  description: What the run removed before it started, left by runs whose owner is gone (see M(pflab.netfilter.lab_cleanup)).
  returned: when RV(status=ran)
  type: list
  elements: str
  sample: ['remove lab sc-4121: its owner, pid 4121, is gone', 'remove namespace pfl-sc-4121-server']
observed:
  description: Whether every probe connected, and the marks of RV(trace) (LOG prefixes, program labels) in order.
  returned: when RV(status=ran)
  type: dict
  sample: {reached: false, trace: [nft-input, ipt-input]}
duration_ms:
  description: Time from lab creation to lab removal.
  returned: when RV(status=ran)
  type: float
  sample: 180.4
'''

from ansible_collections.pflab.netfilter.plugins.module_utils import scenario
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError
from ansible_collections.pflab.netfilter.plugins.module_utils.module import PflabModule


def main():
    module = PflabModule(
        argument_spec=dict(
            src=dict(type='path'),
            scenario=dict(type='dict'),
            variant=dict(type='dict'),
            lab=dict(type='str'),
            timeout=dict(type='int', default=30),
        ),
        required_one_of=[('src', 'scenario')],
        supports_check_mode=True,
    )
    p = module.params
    if p['scenario'] is None:
        module.fail_json(msg='the scenario was not read: run this module through its action plugin '
                             '(pflab.netfilter.scenario in a task), which reads src on the controller')
    if not 1 <= p['timeout'] <= scenario.TIMEOUT_MAX:
        module.fail_json(msg='timeout must be from 1 to %d seconds, got %d' % (scenario.TIMEOUT_MAX, p['timeout']))
    try:
        runner = scenario.Runner(module, p['scenario'], p['lab'], p['timeout'])
        if module.check_mode:
            module.exit_json(changed=False, id=p['scenario']['id'], status='not run', scenario=p['scenario'])
        result = runner.run()
    except (PflabError, OSError) as e:
        module.fail_json(msg=str(e), scenario=p['scenario'])
    module.exit_json(changed=False, scenario=p['scenario'], **result)


if __name__ == '__main__':
    main()
