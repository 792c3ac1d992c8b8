# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One task for a host's preparation: the module reads and cleans; packages only when something is missing."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase

from ansible_collections.pflab.netfilter.plugins.plugin_utils import prepare


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(prepare.OPTIONS + ('cleanup_unmarked',))

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        result.update(prepare.run_prepared(self, 'pflab.netfilter.host_prepare', dict(self._task.args), task_vars))
        return result
