# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nft step: the arguments of pflab.netfilter.nft_rules; a netdev chain's device is a peer role."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re

from ansible_collections.pflab.netfilter.plugins.module_utils import nft
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError
from ansible_collections.pflab.netfilter.plugins.module_utils.steps import base

# "hook input priority 0" or "hook ingress device eth0 priority -10" in nft text
_PRIORITY = re.compile(r'(\bhook\s+\w+\s+(?:device\s+"?[^\s;"]+"?\s+)?priority\s+)([^\s;]+)')


class Nft(base.StepKind):
    name = 'nft'
    module = 'pflab.netfilter.nft_rules'
    spec = nft.ARGUMENT_SPEC
    rules = nft.ARGUMENT_RULES
    layer = 'netfilter'
    forbidden = ('host', 'ruleset_file')  # a scenario carries its ruleset inline
    variant_keys = ('nft_priority', 'reload')

    def validate(self, params):
        nft.validate(params)

    def lab_roles(self, params):
        return [(('chains', index, 'device'), chain['device']) for index, chain in enumerate(params['chains'] or [])
                if chain.get('device') is not None]

    def bind(self, params, plan, role):
        params = copy.deepcopy(params)
        for chain in params['chains'] or []:
            if chain.get('device') is not None:
                chain['device'] = plan.end_towards(role, chain['device'])['ifname']
        return params

    def needs(self, params):
        egress = params['family'] == 'netdev' and any(c.get('hook') == 'egress' for c in params['chains'] or [])
        return 'netdev-egress' if egress else None

    def apply(self, module, params):
        return dict(filter='nftables', changes=nft.manage(module, params)['changes'])

    def vary(self, steps, variant):
        if variant.get('nft_priority') is not None:
            for step in steps:
                if self.name in step:
                    _set_priority(step[self.name], variant['nft_priority'])
        if variant.get('reload'):
            rulesets = [step for step in steps if 'ruleset' in step.get(self.name, {})]
            if not rulesets:
                raise PflabError('variant reload needs an nft step with a ruleset')
            again = copy.deepcopy(rulesets[-1])
            again[self.name]['reload'] = True
            steps.append(again)
        return steps


def _set_priority(args, priority):
    if 'ruleset' in args:
        args['ruleset'] = _PRIORITY.sub(lambda m: m.group(1) + str(priority), args['ruleset'])
    for chain in args.get('chains') or []:
        if chain.get('hook'):
            chain['priority'] = priority


KIND = Nft()
