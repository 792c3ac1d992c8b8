# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The iptables step: the arguments of pflab.netfilter.iptables_rules."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pflab.netfilter.plugins.module_utils import xtables
from ansible_collections.pflab.netfilter.plugins.module_utils.steps import base


class Iptables(base.StepKind):
    name = 'iptables'
    module = 'pflab.netfilter.iptables_rules'
    spec = xtables.ARGUMENT_SPEC
    layer = 'netfilter'
    variant_keys = ('iptables_backend',)

    def validate(self, params):
        xtables.validate(params)

    def needs(self, params):
        return 'iptables-legacy' if params['backend'] == 'legacy' else None

    def apply(self, module, params):
        done = xtables.manage(module, params)
        return dict(filter='iptables-%s' % done['backend']['name'], changes=done['changes'])

    def vary(self, steps, variant):
        if variant.get('iptables_backend'):
            for step in steps:
                if self.name in step:
                    step[self.name]['backend'] = variant['iptables_backend']
        return steps


KIND = Iptables()
