# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's half of a host's preparation (host_prepare, suite): the module reads and checks the host and
says which packages a missing tool needs; only then ansible.builtin.package installs them and the module runs
again. When nothing is missing, the task is one module call."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

OPTIONS = ('min_kernel', 'install', 'packages')


def _package(action, names, task_vars):
    """ansible.builtin.package's action (it picks the host's package manager) for ``names``."""
    task = action._task.copy()
    task.args = dict(name=names, state='present')
    package = action._shared_loader_obj.action_loader.get(
        'ansible.builtin.package', task=task, connection=action._connection, play_context=action._play_context,
        loader=action._loader, templar=action._templar, shared_loader_obj=action._shared_loader_obj)
    return package.run(task_vars=task_vars)


def run_prepared(action, module_name, module_args, task_vars):
    """The result of ``module_name`` run by ``action`` (an ActionBase) with ``module_args``, the packages it asks
    for (``install``) installed between two calls."""
    first = action._execute_module(module_name=module_name, module_args=module_args, task_vars=task_vars)
    if first.get('failed') or not first.get('install'):
        return first
    installed = _package(action, first['install'], task_vars)
    if installed.get('failed'):
        return dict(failed=True, msg='installing %s: %s' % (', '.join(first['install']), installed.get('msg', 'failed')))
    if action._task.check_mode:
        return dict(first, changed=bool(installed.get('changed')))
    again = action._execute_module(module_name=module_name, module_args=dict(module_args, install=False),
                                   task_vars=task_vars)
    return dict(again, installed=bool(installed.get('changed')),
                changed=bool(again.get('changed') or installed.get('changed')))
