# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: matrix_runs
short_description: The scenario runs of an order matrix
version_added: 0.3.0
description:
  - Turns the variants of a matrix file (C(playbooks/scenarios/matrix.yml)) into one C({src, variant}) per row,
    the input of M(pflab.netfilter.scenario) (O(pflab.netfilter.scenario#module:src) and
    O(pflab.netfilter.scenario#module:variant)).
author:
  - pflab.netfilter developers (@pflab)
options:
  _input:
    description: The variants; each has C(id), C(label), C(change), optional C(notes), and C(expect) rows of
      C(scenario), C(reached) and C(trace).
    type: list
    elements: dict
    required: true
  scenario_dir:
    description: Directory of the scenario files the rows name.
    type: path
    required: true
'''

EXAMPLES = r'''
- name: Run the matrix
  pflab.netfilter.scenario:
    src: "{{ item.src }}"
    variant: "{{ item.variant }}"
  loop: "{{ matrix_variants | pflab.netfilter.matrix_runs(playbook_dir ~ '/scenarios/article') }}"
'''

RETURN = r'''
_value:
  description: One C({src, variant}) per row, the variant's C(id) being C(<scenario>-<variant id>).
  type: list
  elements: dict
'''

from ansible_collections.pflab.netfilter.plugins.plugin_utils import scenarios


class FilterModule(object):
    def filters(self):
        return {'matrix_runs': scenarios.matrix_runs}
