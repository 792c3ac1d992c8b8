#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: report
short_description: Write the report of scenario runs (JSON, Markdown, self-contained HTML) on the controller
version_added: 0.3.0
description:
  - Runs on the controller only (action plugin). Reads the results every play host registered with a loop of
    M(pflab.netfilter.scenario) and writes C(report.json) (schema C(pflab.netfilter/report/1), documented in
    C(schemas/report.schema.json)), C(report.md) and C(report.html) (inline CSS and SVG, no script, no external
    asset) in C(<dest>/<run_id>/), then points C(<dest>/latest) at that folder.
  - Per scenario, the report draws the packet's path through the hooks in the order the kernel runs them, marks
    the filters that saw the packet and the one that stopped it, compares expected and observed traces, and gives
    a verdict per host. It states the order rule (different priorities, lowest first; equal priorities, the hook
    registered last first) with the rows that back it, and where the article's conclusion holds.
  - Everything taken from hosts is escaped in the HTML page (Jinja2 autoescape) and in the Markdown tables.
  - Templates are C(templates/report.html.j2) and C(templates/report.md.j2) of the role pflab.netfilter.report,
    which is the usual way to call this module.
author:
  - pflab.netfilter developers (@pflab)
options:
  dest:
    description: Directory on the controller that holds the run folders and the C(latest) link.
    type: path
    required: true
  suite:
    description: Name of the suite, part of the default O(run_id).
    type: str
    default: run
  run_id:
    description: Folder name of this run; default C(<UTC time>-<suite>).
    type: str
  results_var:
    description: The variable each host registered its loop of M(pflab.netfilter.scenario) in.
    type: str
    default: pflab_runs
  hosts:
    description: Hosts to report on, one column each; default every host of the play.
    type: list
    elements: str
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
    description: Each run writes a new folder.
  action:
    support: full
    description: Runs on the controller.
seealso:
  - module: pflab.netfilter.scenario
'''

EXAMPLES = r'''
- name: Run the article's scenarios
  pflab.netfilter.scenario:
    src: "{{ item }}"
  loop: "{{ query('ansible.builtin.fileglob', playbook_dir ~ '/scenarios/article/*.yml') | sort }}"
  register: pflab_runs

- name: Write the report
  pflab.netfilter.report:
    dest: "{{ playbook_dir }}/report"
    suite: article
  run_once: true
'''

RETURN = r'''
dir:
  description: The folder written.
  returned: always
  type: str
  sample: /home/me/report/20261127T221500Z-article
files:
  description: The files written.
  returned: always
  type: list
  elements: str
summary:
  description: Number of scenario runs by status.
  returned: always
  type: dict
  sample: {reproduced: 6, differs: 0, skipped: 0, failed: 0, missing: 0}
rule:
  description: What the runs say of the order rule.
  returned: always
  type: str
  sample: every observed order agrees with it (8 rows)
article:
  description: What the runs say of the article's conclusion.
  returned: always
  type: str
problems:
  description: "One C(host: scenario: status: reasons) line per run that did not reproduce."
  returned: always
  type: list
  elements: str
  sample: ['web1: experiment-2: differs: expected the trace nft-input > ipt-input, the kernel logged ipt-input']
'''
