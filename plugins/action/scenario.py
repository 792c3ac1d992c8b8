# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reads and checks a scenario on the controller, then runs it on the target in one module call."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.pflab.netfilter.plugins.plugin_utils import scenarios


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(('src', 'scenario', 'variant', 'lab', 'timeout'))

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        try:
            data = scenarios.read(dict((k, to_text(v) if k == 'src' else v) for k, v in self._task.args.items()
                                       if k in ('src', 'scenario', 'variant')),
                                  lambda src: self._find_needle('files', src))
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
