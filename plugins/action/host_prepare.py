# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One task for a host's preparation: the module reads and cleans; packages only when something is missing."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(('min_kernel', 'install', 'packages', 'cleanup_unmarked'))

    def _package(self, names, task_vars):
        """ansible.builtin.package's action (it picks the host's package manager) for ``names``."""
        task = self._task.copy()
        task.args = dict(name=names, state='present')
        action = self._shared_loader_obj.action_loader.get(
            'ansible.builtin.package', task=task, connection=self._connection, play_context=self._play_context,
            loader=self._loader, templar=self._templar, shared_loader_obj=self._shared_loader_obj)
        return action.run(task_vars=task_vars)

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = dict(self._task.args)
        first = self._execute_module(module_name='pflab.netfilter.host_prepare', module_args=args, task_vars=task_vars)
        if first.get('failed') or not first.get('install'):
            return dict(result, **first)
        installed = self._package(first['install'], task_vars)
        if installed.get('failed'):
            return dict(result, failed=True,
                        msg='installing %s: %s' % (', '.join(first['install']), installed.get('msg', 'failed')))
        if self._task.check_mode:
            return dict(result, **dict(first, changed=bool(installed.get('changed'))))
        again = self._execute_module(module_name='pflab.netfilter.host_prepare', task_vars=task_vars,
                                     module_args=dict(args, install=False))
        return dict(result, **dict(again, installed=bool(installed.get('changed')),
                                   changed=bool(again.get('changed') or installed.get('changed'))))
