#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: audit_report
short_description: Write the fleet audit report (JSON, Markdown, HTML, JUnit, Prometheus textfiles) on the controller
version_added: 0.5.0
description:
  - Runs on the controller only (action plugin). Reads the result of M(pflab.netfilter.filter_facts) every play
    host registered (O(results_var)) and writes, in C(<dest>/<run_id>/), C(audit.json) (schema
    C(pflab.netfilter/audit/1), documented in C(schemas/audit.schema.json)), C(audit.md), a self-contained
    C(audit.html) (hosts by findings at a glance, identical hosts grouped by digest, and per host its findings and
    the order of everything at each hook point), C(audit.junit.xml) and, when asked, one Prometheus node_exporter
    textfile per host in C(textfiles/); then points C(<dest>/latest) at the folder.
  - In a C(serial) play each batch rewrites the same folder with every host read so far (the default run id is the
    start time of the C(ansible-playbook) process).
  - Everything taken from hosts is escaped in the HTML page (Jinja2 autoescape) and in the Markdown tables.
  - The usual way to call it is the role P(pflab.netfilter.audit#role), which also gates hosts on RV(failing).
author:
  - pflab.netfilter developers (@pflab)
requirements:
  - prometheus_client on the controller, for O(textfiles=true)
options:
  dest:
    description: Directory on the controller that holds the run folders and the C(latest) link.
    type: path
    required: true
  run_id:
    description: Folder name of this run; default C(<start time of ansible-playbook, UTC>-audit).
    type: str
  results_var:
    description: The variable each host registered the result of M(pflab.netfilter.filter_facts) in (its reading
      of this run; a fact cache's older reading is never used).
    type: str
    default: audit_read
  hosts:
    description: Hosts to report on; default every host of the play that has a reading, and the hosts of the
      current batch that have none (unreachable or failed), which the report lists as unreadable.
    type: list
    elements: str
  fail_on:
    description: The severity at or above which a host fails the gate (RV(failing)); V(never) fails none.
    type: str
    default: high
    choices: [high, medium, low, info, never]
  junit:
    description: Write C(audit.junit.xml) (a test suite per host, a test case per finding id).
    type: bool
    default: true
  textfiles:
    description: Write C(textfiles/<host>.prom), node_exporter textfile collector format, with the
      C(prometheus_client) library.
    type: bool
    default: false
  latest:
    description: Point C(<dest>/latest) at the new folder.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Builds the report and writes nothing.
  diff_mode:
    support: none
    description: Each run writes its folder.
  action:
    support: full
    description: Runs on the controller.
seealso:
  - module: pflab.netfilter.filter_facts
'''

EXAMPLES = r'''
- name: Read the packet filters of the lab's server namespace
  pflab.netfilter.filter_facts:
    netns: pfl-demo-server
  register: audit_read

- name: Write the audit report
  pflab.netfilter.audit_report:
    dest: "{{ playbook_dir }}/audit"
    fail_on: high
  run_once: true
  delegate_to: localhost
'''

RETURN = r'''
dir:
  description: The folder written.
  returned: always
  type: str
  sample: /home/me/audit/20261128T101500Z-audit
files:
  description: The files written (in check mode, the files it would write).
  returned: always
  type: list
  elements: str
summary:
  description: Hosts read and unreadable, hosts by worst severity, clean hosts, failing hosts, number of digest groups.
  returned: always
  type: dict
  sample: {hosts: 20, read: 20, unreadable: [], failing: [web3], groups: 9, clean: [web1]}
failing:
  description: Hosts whose worst finding is at or above O(fail_on), and hosts that could not be read (unless
    O(fail_on=never)).
  returned: always
  type: list
  elements: str
  sample: [web3]
textfiles:
  description: The textfile of each host on the controller, when O(textfiles=true).
  returned: always
  type: dict
  sample: {web3: /home/me/audit/20261128T101500Z-audit/textfiles/web3.prom}
written:
  description: Whether the files were written (false in check mode).
  returned: always
  type: bool
'''
