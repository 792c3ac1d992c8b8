# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ovs step: the arguments of pflab.netfilter.ovs_flows, on the bridge of a bridged lab."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pflab.netfilter.plugins.module_utils import ovs
from ansible_collections.pflab.netfilter.plugins.module_utils.steps import base


class Ovs(base.StepKind):
    name = 'ovs'
    module = 'pflab.netfilter.ovs_flows'
    spec = ovs.ARGUMENT_SPEC
    layer = 'ovs'
    in_bridge = True
    forbidden = ('host', 'bridge')  # the lab has one switch, with one bridge

    def validate(self, params):
        ovs.validate(params)

    def needs(self, params):
        return 'ovs'

    def apply(self, module, params):
        return dict(filter='ovs', changes=ovs.manage(module, params)['changes'])

    def marks(self, params, entry):
        return [flow['label'] or 'ovs' for flow in params['flows'] if ovs.flow_text(flow) == entry.get('flow')]


KIND = Ovs()
