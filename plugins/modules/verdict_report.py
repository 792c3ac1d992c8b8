#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: verdict_report
short_description: Write the fleet's flow verdict report (JSON, Markdown, HTML) on the controller, and gate on it
version_added: 0.8.0
description:
  - Runs on the controller only (action plugin). Reads the result of M(pflab.netfilter.flow_verdict) that every play
    host registered (O(results_var)). Writes C(verdict.json) (schema C(pflab.netfilter/verdict_report/1), documented
    in C(schemas/verdict.schema.json)),
    C(verdict.md) and a self-contained C(verdict.html) in C(<dest>/<run_id>/), then points C(<dest>/latest) at the
    folder. The HTML page has hosts by flows with their verdicts, the flows that differ or depend on registration
    order marked, and per host and order the packet's path through the rules that counted it, drawn.
  - A flow differs when its verdicts, across every host and every order replayed on each, are not all one. It
    depends on order on a host whose orders disagree.
  - Everything taken from hosts is escaped in the HTML page (Jinja2 autoescape) and in the Markdown tables.
  - The usual way to call it is the role P(pflab.netfilter.verdict#role), which also fails the hosts when
    RV(gate_fails).
author:
  - pflab.netfilter developers (@pflab)
options:
  dest:
    description: Directory on the controller that holds the run folders and the C(latest) link.
    type: path
    required: true
  run_id:
    description: Folder name of this run; default C(<start time of ansible-playbook, UTC>-verdict).
    type: str
  results_var:
    description: The variable each host registered the result of M(pflab.netfilter.flow_verdict) in.
    type: str
    default: verdict_checked
  hosts:
    description: The hosts to report on; default every host of the play so far.
    type: list
    elements: str
  fail_on:
    description:
      - V(differs) fails the gate on a flow whose verdict differs between hosts or orders, depends on order on one
        host, or is unknown on one (not replayable, or undetermined), since nothing then says the hosts agree. V(order)
        fails only on order dependence. V(never) never fails.
      - A host that could not be checked fails any gate but V(never).
    type: str
    choices: [differs, order, never]
    default: differs
  latest:
    description: Point C(<dest>/latest) at this run's folder.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: In check mode nothing is written; the summary is returned.
  diff_mode:
    support: none
    description: No diff.
seealso:
  - module: pflab.netfilter.flow_verdict
'''

EXAMPLES = r'''
- name: Write the report of the flows every host checked, and fail on flows that differ
  pflab.netfilter.verdict_report:
    dest: "{{ playbook_dir }}/verdict"
    fail_on: differs
  run_once: true
  delegate_to: localhost
'''

RETURN = r'''
dir:
  description: The folder written.
  returned: always
  type: str
  sample: /home/me/verdict/20261128T101500Z-verdict
files:
  description: The files written (in check mode, the files it would write).
  returned: always
  type: list
  elements: str
summary:
  description: Hosts and flows counted; the flows that differ, depend on order, are unknown somewhere (not replayable
    or undetermined), or fail the gate; the hosts that could not be checked; and whether the gate fails.
  returned: always
  type: dict
  sample: {hosts: 3, read: 3, flows: 2, unreadable: [], differs: [tcp 203.0.113.9 > 192.0.2.10:9090 in eth0],
           depends_on_order: [], unknown: [], failing: [tcp 203.0.113.9 > 192.0.2.10:9090 in eth0],
           gate_fails: true}
failing:
  description: The flows that fail the gate.
  returned: always
  type: list
  elements: str
gate_fails:
  description: Whether the run fails the gate (a failing flow, or a host that could not be checked).
  returned: always
  type: bool
written:
  description: Whether the files were written (false in check mode).
  returned: always
  type: bool
'''
