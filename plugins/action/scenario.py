# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reads and checks a scenario on the controller, then runs it on the target in one module call."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.pflab.netfilter.plugins.module_utils.errors import shown
from ansible_collections.pflab.netfilter.plugins.plugin_utils import scenarios


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(('src', 'scenario', 'variant', 'lab', 'timeout'))

    def _scenario(self):
        args = self._task.args
        if ('src' in args) == ('scenario' in args):
            raise scenarios.ScenarioFileError('give exactly one of src and scenario')
        if 'src' in args:
            src = to_text(args['src'])
            path = src if os.path.isabs(src) else self._find_needle('files', src)
            data = scenarios.load(path)
            origin = path
        else:
            data = args['scenario']
            origin = 'scenario %s' % (shown(data.get('id')) if isinstance(data, dict) else '(not a mapping)')
            scenarios.check(data, origin)
        if args.get('variant'):
            data = scenarios.apply_variant(data, args['variant'], origin)
        return data

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        try:
            data = self._scenario()
        except (scenarios.ScenarioFileError, AnsibleError) as e:
            result.update(failed=True, msg=to_text(e))
            return result
        module_args = dict(scenario=data)
        for key in ('lab', 'timeout'):
            if key in self._task.args:
                module_args[key] = self._task.args[key]
        result.update(self._execute_module(module_name='pflab.netfilter.scenario', module_args=module_args,
                                           task_vars=task_vars))
        return result
