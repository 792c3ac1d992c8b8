# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bpf step: the arguments of pflab.netfilter.bpf_filter; its interface is a peer role."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pflab.netfilter.plugins.module_utils import bpf_filter
from ansible_collections.pflab.netfilter.plugins.module_utils.steps import base


class Bpf(base.StepKind):
    name = 'bpf'
    module = 'pflab.netfilter.bpf_filter'
    spec = bpf_filter.ARGUMENT_SPEC
    layer = 'bpf'

    def validate(self, params):
        bpf_filter.validate(dict(params, interface='placeholder'))

    def lab_roles(self, params):
        return [(('interface',), params['interface'])]

    def bind(self, params, plan, role):
        return dict(params, interface=plan.end_towards(role, params['interface'])['ifname'])

    def needs(self, params):
        return 'bpf' if params['hook'] == 'xdp' else 'bpf-tc'

    def apply(self, module, params):
        done = bpf_filter.manage(module, params)
        return dict(filter='xdp' if params['hook'] == 'xdp' else 'tc', changes=done['changes'])

    def marks(self, params, entry):
        return [params['label'] or bpf_filter.default_label(params)]


KIND = Bpf()
